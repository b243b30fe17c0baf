"""Every registered collection: version pointer, immutable pages, entities, recording."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from offload.auth import SCOPE_ADMIN, ClientCache
from offload.collections import REGISTRY
from offload.collections.service import Answer, CollectionService
from offload.http import api_resolver, authenticate_request, json_body
from offload.observability import logger, metrics, tracer
from offload.plugins import load_plugins
from offload.runtime import get_runtime

JSON = "application/json"

runtime = get_runtime()
plugins = load_plugins(runtime.settings.app_modules)
clients = ClientCache(runtime.settings.client_cache_seconds)
service = CollectionService.from_runtime(runtime)
app = api_resolver(runtime.settings)


# Every registered collection on the same five routes: `/{resource}/{resource_id}/{collection}`
# is an owner's list (users/42/matches), `/{resource}/{resource_id}` an entity (matches/m-1).
# The collection is looked up before anything else, so an unknown one costs no AWS call.


@app.route("/<resource>/<resource_id>/<collection>/version", method=["GET", "HEAD"])
@tracer.capture_method
def get_version(resource: str, resource_id: str, collection: str) -> Response:
    listed = REGISTRY.owned(resource, collection)
    return _response(service.version(listed, resource_id, *_conditional()))


@app.route("/<resource>/<resource_id>/<collection>/index", method=["GET", "HEAD"])
@tracer.capture_method
def get_index(resource: str, resource_id: str, collection: str) -> Response:
    listed = REGISTRY.owned(resource, collection)
    return _response(service.index(listed, resource_id, *_conditional()))


@app.route("/<resource>/<resource_id>/<collection>/pages/<page>", method=["GET", "HEAD"])
@tracer.capture_method
def get_page(resource: str, resource_id: str, collection: str, page: str) -> Response:
    listed = REGISTRY.owned(resource, collection)
    return _response(service.page(listed, resource_id, page, *_conditional()))


@app.route("/<resource>/<resource_id>", method=["GET", "HEAD"])
@tracer.capture_method
def get_entity(resource: str, resource_id: str) -> Response:
    return _response(service.entity(REGISTRY.named(resource), resource_id, *_conditional()))


@app.post("/<resource>")
@tracer.capture_method
def post_entity(resource: str) -> Response:
    collection = REGISTRY.named(resource)
    authenticate_request(app, SCOPE_ADMIN, clients)
    return _response(service.record(collection, json_body(app)))


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
