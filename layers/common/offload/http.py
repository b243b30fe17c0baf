"""HTTP edges shared by the API functions: problem+json answers and exception mapping."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from http import HTTPStatus

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from offload.auth import Client, ClientCache, authenticate, extract_key
from offload.config import Settings
from offload.errors import (
    DependencyUnavailable,
    InvalidRequest,
    OffloadError,
    UnsupportedMediaType,
)
from offload.observability import logger

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://offload.dev/problems/"
NO_STORE = "no-store"
# Where a request keeps the headers all its answers carry (Powertools clears it per request).
ANSWER_HEADERS = "offload_answer_headers"


def problem(
    status: HTTPStatus,
    title: str,
    detail: str,
    *,
    type_slug: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An RFC 9457 problem answer."""
    body = {
        "type": PROBLEM_TYPE_BASE + (type_slug or title.lower().replace(" ", "-")),
        "title": title,
        "status": int(status),
        "detail": detail,
    }
    return Response(
        status_code=int(status),
        content_type=PROBLEM_JSON,
        body=json.dumps(body),
        headers={"Cache-Control": NO_STORE, **(headers or {})},
    )


def error_response(
    error: OffloadError, *, retry_after: int, recorded: Mapping[str, str] | None = None
) -> Response:
    """The problem answer for a domain error; a 503 always says when to retry.

    `recorded` headers come first: an error's own (a 429's RateLimit-*) are the newer word.
    """
    headers = {**(recorded or {}), **error.headers}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    elif error.status == HTTPStatus.SERVICE_UNAVAILABLE:
        headers["Retry-After"] = str(retry_after)
    return problem(
        error.status, error.title, error.detail, type_slug=error.type_slug, headers=headers
    )


def add_answer_headers(app: APIGatewayHttpResolver, headers: Mapping[str, str]) -> None:
    """Headers every answer to the current request carries, success or error (RateLimit-*)."""
    app.append_context(**{ANSWER_HEADERS: {**answer_headers(app), **headers}})


def answer_headers(app: APIGatewayHttpResolver) -> dict[str, str]:
    """What `add_answer_headers` recorded for the current request."""
    return dict(app.context.get(ANSWER_HEADERS, {}))


class _Resolver(APIGatewayHttpResolver):
    """Routes matched as API Gateway matches them.

    Powertools' `<name>` accepts only some characters and its `$` lets a trailing newline
    through, so `/matches/€` would be "no such route" and `/matches/m-1%0a` would reach the
    handler as `m-1`. API Gateway's `{name}` is any characters but `/`; the handlers' own
    checks then answer 400 for what they refuse.
    """

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = "") -> re.Pattern[str]:
        pattern = re.sub(r"<(\w+)>", r"(?P<\1>[^/]+)", rule)
        return re.compile(rf"\A{pattern}\Z", re.DOTALL)


def api_resolver(settings: Settings) -> APIGatewayHttpResolver:
    """The HTTP API resolver every API function uses: problem answers, answer headers."""
    app = _Resolver()
    register_error_handlers(app, settings)

    def with_answer_headers(
        app: APIGatewayHttpResolver, next_middleware: NextMiddleware
    ) -> Response:
        response = next_middleware(app)
        response.headers.update(answer_headers(app))
        return response

    app.use(middlewares=[with_answer_headers])
    return app


def authenticate_request(app: APIGatewayHttpResolver, scope: str, clients: ClientCache) -> Client:
    """The caller of the current request, by its API key, if the key may use `scope`."""
    event = app.current_event
    key = extract_key(event.headers or {}, event.query_string_parameters or {})
    return authenticate(key, scope, clients)


def json_body(app: APIGatewayHttpResolver) -> dict:
    """The request's JSON object body, or InvalidRequest."""
    event = app.current_event
    content_type = (event.headers or {}).get("content-type", "application/json")
    # Media types are case-insensitive (RFC 9110).
    if "json" not in content_type.split(";")[0].strip().lower():
        raise UnsupportedMediaType("send the body as application/json")
    try:
        body = json.loads(event.decoded_body or "")
    except ValueError as exc:  # UnicodeDecodeError included
        raise InvalidRequest("the body is not valid JSON") from exc
    except RecursionError as exc:
        raise InvalidRequest("the body nests too deeply") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    return body


def register_error_handlers(app: APIGatewayHttpResolver, settings: Settings) -> None:
    """Map every failure to problem+json: domain errors, AWS failures, unknown routes."""

    def answer(error: OffloadError) -> Response:
        return error_response(
            error, retry_after=settings.retry_after_seconds, recorded=answer_headers(app)
        )

    @app.exception_handler(OffloadError)
    def _domain(error: OffloadError) -> Response:
        if error.status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            logger.warning("request failed", extra={"status": int(error.status)}, exc_info=error)
        return answer(error)

    @app.exception_handler([ClientError, BotoCoreError, PynamoDBException])
    def _dependency(error: Exception) -> Response:
        logger.exception("dependency failed")
        return answer(DependencyUnavailable("a backing service failed; retry shortly"))

    @app.not_found
    def _not_found(_: NotFoundError) -> Response:
        return problem(HTTPStatus.NOT_FOUND, "Not found", "no such route")

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response:
        logger.exception("unhandled error")
        return answer(OffloadError("the request could not be served"))
