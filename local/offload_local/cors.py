"""CORS as AWS answers it, from the template: API Gateway's CorsConfiguration, S3's CORS rules.

API Gateway (HTTP API) answers a preflight itself (`OPTIONS` with `Origin` and
`Access-Control-Request-Method`, on any path), adds the configured headers to every answer to
a request with an `Origin`, and drops any CORS header the function set. S3 evaluates a
bucket's rules in order: the first whose origin, method and requested headers all match
answers; a preflight no rule allows is a 403, and a GET or HEAD no rule allows goes out
without CORS headers. moto instead lets flask-cors echo any origin on every answer, which
neither does, so the emulator's answers pass through `BucketCors`.
"""

from __future__ import annotations

import fnmatch
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from offload_local.presigned import S3Error, StartResponse, WsgiApp

CORS_PREFIX = "access-control-"


def _names(values: Iterable[str]) -> str:
    return ",".join(values)


def _without_cors(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers if not name.lower().startswith(CORS_PREFIX)]


@dataclass(frozen=True, slots=True)
class ApiCors:
    """An HttpApi's `CorsConfiguration`."""

    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False

    @classmethod
    def of(cls, configuration: dict[str, Any]) -> ApiCors:
        def listed(name: str) -> tuple[str, ...]:
            value = configuration.get(name) or ()
            return tuple(str(item) for item in ([value] if isinstance(value, str) else value))

        max_age = configuration.get("MaxAge")
        return cls(
            allow_origins=listed("AllowOrigins"),
            allow_methods=listed("AllowMethods"),
            allow_headers=listed("AllowHeaders"),
            expose_headers=listed("ExposeHeaders"),
            max_age=None if max_age is None else int(max_age),
            allow_credentials=str(configuration.get("AllowCredentials", "false")).lower()
            == "true",
        )

    def _allowed_origin(self, origin: str | None) -> str | None:
        if not origin:
            return None
        if "*" in self.allow_origins:
            return "*"
        return origin if origin in self.allow_origins else None

    def is_preflight(self, method: str, headers: dict[str, str]) -> bool:
        return (
            method == "OPTIONS"
            and "origin" in headers
            and "access-control-request-method" in headers
        )

    def preflight(self, headers: dict[str, str]) -> list[tuple[str, str]]:
        """The headers of API Gateway's 204 to a preflight (none when the origin is not allowed)."""
        origin = self._allowed_origin(headers.get("origin"))
        if origin is None:
            return []
        answer = [("Access-Control-Allow-Origin", origin)]
        if self.allow_methods:
            answer.append(("Access-Control-Allow-Methods", _names(self.allow_methods)))
        if self.allow_headers:
            answer.append(("Access-Control-Allow-Headers", _names(self.allow_headers)))
        if self.max_age is not None:
            answer.append(("Access-Control-Max-Age", str(self.max_age)))
        if self.allow_credentials:
            answer.append(("Access-Control-Allow-Credentials", "true"))
        return answer

    def apply(
        self, headers: dict[str, str], answer: Sequence[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """An answer's headers as API Gateway sends them: the function's CORS headers replaced."""
        kept = _without_cors(answer)
        origin = self._allowed_origin(headers.get("origin"))
        if origin is None:
            return kept
        kept.append(("Access-Control-Allow-Origin", origin))
        if self.expose_headers:
            kept.append(("Access-Control-Expose-Headers", _names(self.expose_headers)))
        if self.allow_credentials:
            kept.append(("Access-Control-Allow-Credentials", "true"))
        return kept


@dataclass(frozen=True, slots=True)
class CorsRule:
    """One of a bucket's `CorsRules`."""

    allowed_origins: tuple[str, ...]
    allowed_methods: tuple[str, ...]
    allowed_headers: tuple[str, ...] = ()
    exposed_headers: tuple[str, ...] = ()
    max_age: int | None = None

    @classmethod
    def of(cls, rule: dict[str, Any]) -> CorsRule:
        max_age = rule.get("MaxAge")
        return cls(
            allowed_origins=tuple(rule.get("AllowedOrigins", ())),
            allowed_methods=tuple(method.upper() for method in rule.get("AllowedMethods", ())),
            allowed_headers=tuple(name.lower() for name in rule.get("AllowedHeaders", ())),
            exposed_headers=tuple(rule.get("ExposedHeaders", ())),
            max_age=None if max_age is None else int(max_age),
        )

    def matches(self, origin: str, method: str, requested: Sequence[str] = ()) -> bool:
        """S3's test: the origin and method allowed, and every requested header allowed."""
        return (
            any(fnmatch.fnmatchcase(origin, allowed) for allowed in self.allowed_origins)
            and method.upper() in self.allowed_methods
            and all(
                any(fnmatch.fnmatchcase(name, allowed) for allowed in self.allowed_headers)
                for name in requested
            )
        )

    def headers(self, origin: str, requested: Sequence[str] = ()) -> list[tuple[str, str]]:
        answer = [
            ("Access-Control-Allow-Origin", "*" if "*" in self.allowed_origins else origin),
            ("Access-Control-Allow-Methods", ", ".join(self.allowed_methods)),
        ]
        if requested:
            answer.append(("Access-Control-Allow-Headers", ", ".join(requested)))
        if self.exposed_headers:
            answer.append(("Access-Control-Expose-Headers", ", ".join(self.exposed_headers)))
        if self.max_age is not None:
            answer.append(("Access-Control-Max-Age", str(self.max_age)))
        return answer


# S3 answers every CORS evaluation with this, whichever rule matched.
_VARY = ("Vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method")
_NOT_ALLOWED = (
    "CORSResponse: This CORS request is not allowed. This is usually because the evalution of "
    "Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers "
    "are not whitelisted by the resource's CORS spec."
)


class BucketCors:
    """WSGI middleware: S3's CORS over the emulator, for the buckets the template declares."""

    def __init__(self, app: WsgiApp, rules: Callable[[str], Sequence[CorsRule] | None]) -> None:
        """`rules(bucket)`: the bucket's rules ([] when it has none), None for no such bucket."""
        self.app = app
        self.rules = rules

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        origin = environ.get("HTTP_ORIGIN")
        bucket = unquote(environ.get("PATH_INFO", "")).lstrip("/").split("/", 1)[0]
        rules = self.rules(bucket) if bucket else None
        if rules is None:  # not S3, or not a bucket of the stack: moto's answer, uncorsed
            return self.app(environ, _stripping(start_response, []))
        if method == "OPTIONS":
            return self._preflight(environ, start_response, rules, origin)
        added: list[tuple[str, str]] = []
        if origin:
            rule = next((rule for rule in rules if rule.matches(origin, method)), None)
            if rule is not None:
                added = [*rule.headers(origin), _VARY]
        return self.app(environ, _stripping(start_response, added))

    def _preflight(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        rules: Sequence[CorsRule],
        origin: str | None,
    ) -> Iterable[bytes]:
        wanted = environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD")
        if not origin or not wanted:
            refusal = S3Error(
                HTTPStatus.BAD_REQUEST,
                "BadRequest",
                "Insufficient information. Origin request header needed.",
            )
            return _error(start_response, refusal)
        if not rules:
            refusal = S3Error(
                HTTPStatus.FORBIDDEN,
                "AccessForbidden",
                "CORSResponse: CORS is not enabled for this bucket.",
                Method=wanted,
                ResourceType="OBJECT",
            )
            return _error(start_response, refusal)
        requested = [
            name.strip().lower()
            for name in environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "").split(",")
            if name.strip()
        ]
        rule = next((rule for rule in rules if rule.matches(origin, wanted, requested)), None)
        if rule is None:
            refusal = S3Error(
                HTTPStatus.FORBIDDEN,
                "AccessForbidden",
                _NOT_ALLOWED,
                Method=wanted,
                ResourceType="OBJECT",
            )
            return _error(start_response, refusal)
        headers = [*rule.headers(origin, requested), _VARY, ("Content-Length", "0")]
        start_response("200 OK", headers)
        return [b""]


def _stripping(start_response: StartResponse, added: list[tuple[str, str]]) -> StartResponse:
    def start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        return start_response(status, [*_without_cors(headers), *added], *args)

    return start


def _error(start_response: StartResponse, refusal: S3Error) -> Iterable[bytes]:
    request_id = secrets.token_hex(8).upper()
    body = refusal.body(request_id, secrets.token_urlsafe(48))
    start_response(
        f"{refusal.status.value} {refusal.status.phrase}",
        [
            ("Content-Type", "application/xml"),
            ("Content-Length", str(len(body))),
            ("x-amz-request-id", request_id),
        ],
    )
    return [body]
