"""Users' match lists: version pointer, immutable snapshots, match entities, recording."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from offload.auth import SCOPE_ADMIN, ClientCache
from offload.collections import MATCHES
from offload.collections.service import CollectionService
from offload.http import authenticate_request, json_body, register_error_handlers
from offload.observability import logger, metrics, tracer
from offload.runtime import get_runtime

runtime = get_runtime()
clients = ClientCache(runtime.settings.client_cache_seconds)
service = CollectionService.from_runtime(runtime)
app = APIGatewayHttpResolver()
register_error_handlers(app, runtime.settings)


@app.get("/users/<user_id>/matches/version")
@tracer.capture_method
def get_version(user_id: str) -> Response:
    return service.version(MATCHES, user_id, *_conditional()).response()


@app.get("/users/<user_id>/matches/index")
@tracer.capture_method
def get_index(user_id: str) -> Response:
    return service.index(MATCHES, user_id, *_conditional()).response()


@app.get("/matches/<match_id>")
@tracer.capture_method
def get_match(match_id: str) -> Response:
    return service.entity(MATCHES, match_id, *_conditional()).response()


@app.post("/matches")
@tracer.capture_method
def post_match() -> Response:
    authenticate_request(app, SCOPE_ADMIN, clients)
    return service.record(MATCHES, json_body(app)).response()


def _conditional() -> tuple[dict[str, str], str | None]:
    event = app.current_event
    return event.query_string_parameters or {}, (event.headers or {}).get("if-none-match")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
