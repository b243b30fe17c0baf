"""POST /invalidations: make feed files (or a collection's version) regenerate."""

from __future__ import annotations

import json
import time
from http import HTTPStatus

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from offload.auth import SCOPE_ADMIN, ClientCache
from offload.collections.store import CollectionStore
from offload.http import api_resolver, authenticate_request, json_body
from offload.invalidation import apply, parse_invalidation
from offload.observability import logger, metrics, tracer
from offload.plugins import load_plugins
from offload.runtime import get_runtime

runtime = get_runtime()
# Invalidations name the feeds and collections the plugins registered.
load_plugins(runtime.settings.app_modules)
clients = ClientCache(runtime.settings.client_cache_seconds)
collections = CollectionStore.for_settings(runtime.settings)
app = api_resolver(runtime.settings)


@app.post("/invalidations")
@tracer.capture_method
def create_invalidation() -> Response:
    authenticate_request(app, SCOPE_ADMIN, clients)
    request = parse_invalidation(json_body(app))
    body = apply(request, now=time.time(), collections=collections)
    logger.info("invalidated", extra=body)
    return Response(HTTPStatus.ACCEPTED, content_type="application/json", body=json.dumps(body))


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
