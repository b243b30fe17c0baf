"""Users' match lists: version pointer, immutable pages, match entities, recording."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from offload.auth import SCOPE_ADMIN, ClientCache
from offload.collections import MATCHES
from offload.collections.service import Answer, CollectionService
from offload.http import api_resolver, authenticate_request, json_body
from offload.observability import logger, metrics, tracer
from offload.runtime import get_runtime

JSON = "application/json"

runtime = get_runtime()
clients = ClientCache(runtime.settings.client_cache_seconds)
service = CollectionService.from_runtime(runtime)
app = api_resolver(runtime.settings)


@app.get("/users/<user_id>/matches/version")
@tracer.capture_method
def get_version(user_id: str) -> Response:
    return _response(service.version(MATCHES, user_id, *_conditional()))


@app.get("/users/<user_id>/matches/index")
@tracer.capture_method
def get_index(user_id: str) -> Response:
    return _response(service.index(MATCHES, user_id, *_conditional()))


@app.get("/users/<user_id>/matches/pages/<page>")
@tracer.capture_method
def get_page(user_id: str, page: str) -> Response:
    return _response(service.page(MATCHES, user_id, page, *_conditional()))


@app.get("/matches/<match_id>")
@tracer.capture_method
def get_match(match_id: str) -> Response:
    return _response(service.entity(MATCHES, match_id, *_conditional()))


@app.post("/matches")
@tracer.capture_method
def post_match() -> Response:
    authenticate_request(app, SCOPE_ADMIN, clients)
    return _response(service.record(MATCHES, json_body(app)))


def _response(answer: Answer) -> Response:
    headers = {"Cache-Control": answer.cache_control}
    if answer.etag is not None:
        headers["ETag"] = answer.etag
    if answer.location is not None:
        headers["Location"] = answer.location
    if answer.body is None:
        return Response(answer.status, headers=headers, body=None)
    return Response(answer.status, content_type=JSON, body=answer.body.decode(), headers=headers)


def _conditional() -> tuple[dict[str, str], str | None]:
    event = app.current_event
    return event.query_string_parameters or {}, (event.headers or {}).get("if-none-match")


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
