"""The HTTP front: what API Gateway's HTTP API does for the template's routes, locally.

Each request becomes a payload format 2.0 event for the function whose route matches (routes
come from template.yaml), runs on its own thread in a simulated container, and the function's
answer goes back to the client byte for byte. API Gateway's own answers (no route, throttled,
failed or timed-out integration, body too large) are reproduced as well.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from werkzeug.serving import WSGIRequestHandler

from offload_local.cors import ApiCors
from offload_local.lambdas import Containers
from offload_local.template import Function, Route, variable_conflicts

log = logging.getLogger(__name__)

RAW_HEADERS = "offload_local.raw_headers"
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # HTTP API's payload limit
MAX_RESPONSE_BYTES = 6 * 1024 * 1024  # a synchronous Lambda response, JSON envelope included
INTEGRATION_TIMEOUT = 30.0  # the longest an HTTP API waits for its integration
# Bodies of these types reach the function as text; anything else is base64-encoded.
_TEXT = re.compile(
    r"text/.*|application/(json|xml|javascript|x-www-form-urlencoded|x-yaml|yaml)"
    r"|application/[\w.+-]+\+(json|xml)",
)
# Set by the gateway itself, as API Gateway replaces them.
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}
_WITHOUT_BODY = {HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED}


class MalformedRequest(Exception):
    """A request API Gateway refuses before routing it: 400 Bad Request."""


def query_parameters(raw_query: str) -> dict[str, str]:
    """`queryStringParameters` as HTTP APIs send them: a repeated name's values comma-joined."""
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    return query


class GatewayRequestHandler(WSGIRequestHandler):
    """Keeps the raw header list (WSGI folds and drops some), answers a request it cannot
    parse as API Gateway does, and logs without query strings or request lines."""

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        environ[RAW_HEADERS] = list(self.headers.items())
        return environ

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The query string may hold an API key (?key=), so it stays out of the log. A request
        # line that did not parse (a space in the query) has no path to show at all.
        path = getattr(self, "path", None)
        shown = urlsplit(path).path if path is not None else "(malformed request line)"
        log.info("%s %s %s", self.command or "-", shown, code)

    def log_error(self, format: str, *args: Any) -> None:
        # http.server words these with the raw request line, which may hold a key.
        log.warning("refused a request it could not parse")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line or header), in API Gateway's
        words: `{"message": "Bad Request"}`, and the connection closed."""
        error = _gateway_error(HTTPStatus(code))
        self.close_connection = True
        self.send_response(code)
        for name, value in [*error.headers, ("Content-Length", str(len(error.body)))]:
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= HTTPStatus.OK:
            self.wfile.write(error.body)


class TokenBucket:
    """API Gateway's throttling: `rate` requests a second on average, `burst` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


@dataclass(frozen=True, slots=True)
class _Target:
    route: Route
    function: Function
    containers: Containers
    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """What goes back on the wire."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _gateway_error(status: HTTPStatus) -> HttpResponse:
    body = json.dumps({"message": status.phrase}).encode()
    return HttpResponse(int(status), [("Content-Type", "application/json")], body)


class Gateway:
    """A WSGI app that routes, builds v2.0 events, invokes and writes the answers back."""

    def __init__(
        self,
        functions: Iterable[Function],
        containers: Mapping[str, Containers],
        *,
        account_id: str,
        api_id: str = "local",
        throttling: tuple[float, int] | None = None,
        cors: ApiCors | None = None,
    ) -> None:
        """`cors`: the HttpApi's CorsConfiguration, applied to every answer as API Gateway's."""
        targets = [
            _Target(route, function, containers[function.logical_id], route.pattern)
            for function in functions
            for route in function.routes
        ]
        # API Gateway would not deploy these routes (ConflictException); neither do we.
        if conflicts := variable_conflicts(target.route for target in targets):
            raise ValueError("; ".join(conflicts))
        self._targets = sorted(targets, key=lambda target: target.route.specificity)
        self._account_id = account_id
        self._api_id = api_id
        self._cors = cors
        self._buckets = (
            {target.route.key: TokenBucket(*throttling) for target in targets} if throttling else {}
        )

    def match(self, method: str, path: str) -> tuple[_Target, dict[str, str]] | None:
        """The most specific route for the request and its path parameters, as API Gateway."""
        for target in self._targets:
            if target.route.method not in {method, "ANY"}:
                continue
            if found := target.pattern.fullmatch(path):
                return target, found.groupdict()
        return None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request_id = f"{secrets.token_hex(4)}-{secrets.token_hex(2)}="
        request_headers, _ = _headers(environ)
        method = environ["REQUEST_METHOD"]
        if self._cors is not None and self._cors.is_preflight(method, request_headers):
            # API Gateway answers a preflight itself, whatever the path: no route, no function.
            _read_body(environ)
            response = HttpResponse(204, self._cors.preflight(request_headers), b"")
        else:
            response = self._respond(environ, request_id)
            if self._cors is not None:
                headers = self._cors.apply(request_headers, response.headers)
                response = HttpResponse(response.status, headers, response.body)
        status = response.status
        # A 304 or 204 has no body to measure: a Content-Length on a 304 would claim the
        # length of the representation it stands for (RFC 9110 §8.6), so none is sent. A
        # HEAD's Content-Length is its GET's: the function's body, never sent.
        bodiless = status in _WITHOUT_BODY
        length = [] if bodiless else [("Content-Length", str(len(response.body)))]
        headers = [*response.headers, *length, ("apigw-requestid", request_id)]
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        start_response(f"{status} {phrase}".strip(), headers)
        return [] if bodiless or method == "HEAD" else [response.body]

    def _respond(self, environ: dict[str, Any], request_id: str) -> HttpResponse:
        try:
            body = _read_body(environ)
        except MalformedRequest:
            # Before routing, as API Gateway; werkzeug closes every connection after its answer.
            return _gateway_error(HTTPStatus.BAD_REQUEST)
        raw_path, raw_query = _raw_target(environ)
        # HTTP APIs route on, and hand the function, the percent-decoded path.
        path = unquote(raw_path)
        found = self.match(environ["REQUEST_METHOD"], path)
        if found is None:
            return _gateway_error(HTTPStatus.NOT_FOUND)
        if body is None:
            return _gateway_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        target, parameters = found
        bucket = self._buckets.get(target.route.key)
        if bucket is not None and not bucket.take():
            return _gateway_error(HTTPStatus.TOO_MANY_REQUESTS)
        event = self.event(
            environ,
            route=target.route,
            path=path,
            raw_query=raw_query,
            parameters=parameters,
            body=body,
            request_id=request_id,
        )
        return self._invoke(target, event)

    def event(
        self,
        environ: dict[str, Any],
        *,
        route: Route,
        path: str,
        raw_query: str,
        parameters: dict[str, str],
        body: bytes,
        request_id: str,
    ) -> dict[str, Any]:
        """The HTTP API payload format 2.0 event for one request."""
        now = datetime.now(UTC)
        source_ip = environ.get("REMOTE_ADDR", "127.0.0.1")
        headers, cookies = _headers(environ)
        forwarded_for = headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{forwarded_for}, {source_ip}" if forwarded_for else source_ip
        headers["x-forwarded-port"] = str(environ.get("SERVER_PORT", ""))
        headers["x-forwarded-proto"] = environ.get("wsgi.url_scheme", "http")
        headers["x-amzn-trace-id"] = f"Root=1-{int(now.timestamp()):08x}-{secrets.token_hex(12)}"
        domain = headers.get("host", "").rsplit(":", 1)[0] or "localhost"
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.key,
            "rawPath": path,
            "rawQueryString": raw_query,
        }
        if cookies:
            event["cookies"] = cookies
        event["headers"] = headers
        if query := query_parameters(raw_query):
            event["queryStringParameters"] = query
        event["requestContext"] = {
            "accountId": self._account_id,
            "apiId": self._api_id,
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": environ["REQUEST_METHOD"],
                "path": path,
                "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route.key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        }
        if body:
            if _is_text(headers.get("content-type", "")):
                try:
                    event["body"], event["isBase64Encoded"] = body.decode(), False
                except UnicodeDecodeError:
                    event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
            else:
                event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        else:
            event["isBase64Encoded"] = False
        if parameters:
            event["pathParameters"] = parameters
        return event

    def _invoke(self, target: _Target, event: dict[str, Any]) -> HttpResponse:
        """Run the function on its own thread; answer as API Gateway when it fails or hangs."""
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                outcome["result"] = target.containers.invoke(event)
            except Exception:
                log.exception("%s failed", target.function.logical_id)
                outcome["failed"] = True
            finally:
                done.set()

        threading.Thread(target=run, name=target.function.logical_id, daemon=True).start()
        if not done.wait(min(target.function.timeout, INTEGRATION_TIMEOUT)):
            log.error("%s timed out", target.function.logical_id)
            if target.function.timeout >= INTEGRATION_TIMEOUT:
                return _gateway_error(HTTPStatus.SERVICE_UNAVAILABLE)
            return _gateway_error(HTTPStatus.INTERNAL_SERVER_ERROR)
        if outcome.get("failed"):
            return _gateway_error(HTTPStatus.INTERNAL_SERVER_ERROR)
        result = outcome.get("result")
        try:
            if len(json.dumps(result)) > MAX_RESPONSE_BYTES:
                log.error("%s: response over Lambda's 6 MB limit", target.function.logical_id)
                return _gateway_error(HTTPStatus.INTERNAL_SERVER_ERROR)
            return http_response(result)
        except (TypeError, ValueError, binascii.Error):
            log.exception("%s returned a malformed response", target.function.logical_id)
            return _gateway_error(HTTPStatus.INTERNAL_SERVER_ERROR)


def http_response(result: Any) -> HttpResponse:
    """A function's answer as API Gateway writes it: status, headers, cookies, exact body."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # Payload 2.0 lets a function return any JSON value: a 200 with it as the body.
        body = json.dumps(result).encode()
        return HttpResponse(200, [("Content-Type", "application/json")], body)
    status = int(result["statusCode"])
    if not 100 <= status <= 599:
        raise ValueError(f"status {status} out of range")
    headers = [
        (name, str(value))
        for name, value in (result.get("headers") or {}).items()
        if name.lower() not in _HOP_BY_HOP
    ]
    headers += [("Set-Cookie", cookie) for cookie in result.get("cookies") or []]
    text = result.get("body") or ""
    if not isinstance(text, str):
        raise TypeError("the body must be a string")
    data = base64.b64decode(text, validate=True) if result.get("isBase64Encoded") else text.encode()
    return HttpResponse(status, headers, data)


def _raw_target(environ: dict[str, Any]) -> tuple[str, str]:
    """The request target as sent: raw path and raw query string."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        return quote(path), environ.get("QUERY_STRING", "")
    if not raw.startswith("/"):  # absolute-form (a proxy's request line)
        parts = urlsplit(raw)
        return parts.path or "/", parts.query
    path, _, query = raw.partition("?")
    return path, query


def _headers(environ: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Lower-cased headers, repeated ones comma-joined; the Cookie header as a list."""
    raw = environ.get(RAW_HEADERS)
    if raw is None:
        raw = [
            (name[5:].replace("_", "-"), value)
            for name, value in environ.items()
            if name.startswith("HTTP_")
        ]
        raw += [
            (name.replace("_", "-"), environ[name])
            for name in ("CONTENT_TYPE", "CONTENT_LENGTH")
            if environ.get(name)
        ]
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in raw:
        name = name.lower()
        if name == "cookie":
            cookies += [cookie.strip() for cookie in value.split(";") if cookie.strip()]
        else:
            headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers, cookies


def _read_body(environ: dict[str, Any]) -> bytes | None:
    """The whole request body (read even when unused, so keep-alive stays in step), or None
    when it is over HTTP API's limit; MalformedRequest when its length is not a length."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if not length and not environ.get("wsgi.input_terminated"):
        return b""
    if length and not (length.isascii() and length.isdigit()):
        raise MalformedRequest(f"Content-Length is not a number of bytes: {length!r}")
    remaining = int(length) if length else None
    chunks, size = [], 0
    while remaining is None or remaining > 0:
        chunk = stream.read(65536 if remaining is None else min(65536, remaining))
        if not chunk:
            break
        size += len(chunk)
        if remaining is not None:
            remaining -= len(chunk)
        if size <= MAX_REQUEST_BYTES:
            chunks.append(chunk)
    return b"".join(chunks) if size <= MAX_REQUEST_BYTES else None


def _is_text(content_type: str) -> bool:
    return bool(_TEXT.fullmatch(content_type.split(";", 1)[0].strip().lower()))
