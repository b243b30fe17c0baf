"""GET /feeds/{feed}.{format}: authenticate, rate-limit, redirect to a fresh file or build it."""

from __future__ import annotations

import json
from http import HTTPStatus

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from offload.auth import SCOPE_FEEDS, ClientCache
from offload.feeds.delivery import LINK_MEDIA_TYPE, sent_as_text
from offload.feeds.service import FeedAnswer, FeedService, audit_download
from offload.http import add_answer_headers, api_resolver, authenticate_request
from offload.observability import logger, metrics, tracer
from offload.plugins import load_plugins
from offload.ratelimit import RateStatus
from offload.runtime import get_runtime

runtime = get_runtime()
plugins = load_plugins(runtime.settings.app_modules)
clients = ClientCache(runtime.settings.client_cache_seconds)
service = FeedService(runtime, registry=plugins.feeds)
app = api_resolver(runtime.settings)


@app.route("/feeds/<file>", method=["GET", "HEAD"])
@tracer.capture_method
def get_feed(file: str) -> Response:
    client = authenticate_request(app, SCOPE_FEEDS, clients)
    logger.append_keys(client_id=client.client_id)
    event = app.current_event
    answer = service.handle(
        file,
        event.raw_query_string or "",
        client,
        headers=event.headers or {},
        metered=_rate_headers,
        # Counted as a GET is; answered from what is stored, never generated.
        probe=event.request_context.http.method == "HEAD",
    )
    if answer.object_key is not None and not answer.not_modified:
        audit_download(answer, client, file, event)
    return _response(answer, _request_target(event.path, event.raw_query_string))


def _rate_headers(status: RateStatus) -> None:
    add_answer_headers(app, status.headers())


def _request_target(path: str, query: str | None) -> str:
    return f"{path}?{query}" if query else path


def _response(answer: FeedAnswer, target: str) -> Response:
    headers = {"Cache-Status": answer.outcome.cache_status, "Cache-Control": "private, no-store"}
    if answer.etag is not None:
        headers["ETag"] = answer.etag
    if answer.digest is not None:
        headers["Repr-Digest"] = answer.digest
    if answer.retry_after is not None:
        # Generating in the background: this same request is the status link.
        headers |= {"Retry-After": str(answer.retry_after), "Location": target}
        status = {"status": "pending", "retry_after": answer.retry_after, "location": target}
        return Response(
            HTTPStatus.ACCEPTED,
            content_type="application/json",
            body=json.dumps(status),
            headers=headers,
        )
    if answer.not_modified:
        return Response(HTTPStatus.NOT_MODIFIED, headers=headers, body=None)
    if answer.link is not None:
        document = json.dumps(answer.link.document())
        return Response(HTTPStatus.OK, content_type=LINK_MEDIA_TYPE, body=document, headers=headers)
    if answer.location is not None:
        headers["Location"] = answer.location
        return Response(HTTPStatus.TEMPORARY_REDIRECT, headers=headers, body="")
    data = answer.body or b""
    if answer.disposition is not None:
        headers["Content-Disposition"] = answer.disposition
    # Only text is answered inline (sent_as_text); bytes would go out base64-encoded.
    body: str | bytes = data.decode() if sent_as_text(answer.content_type) else data
    return Response(HTTPStatus.OK, content_type=answer.content_type, body=body, headers=headers)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
