"""The errors a request can end in; `offload.http` maps each to a problem+json answer."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus


class OffloadError(Exception):
    """Base of every error that has a meaning for the caller."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    title: str = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})
        self.retry_after = retry_after

    @property
    def type_slug(self) -> str:
        return self.title.lower().replace(" ", "-")


class InvalidRequest(OffloadError):
    status = HTTPStatus.BAD_REQUEST
    title = "Invalid request"


class Unauthorized(OffloadError):
    status = HTTPStatus.UNAUTHORIZED
    title = "Missing API key"


class Forbidden(OffloadError):
    status = HTTPStatus.FORBIDDEN
    title = "Forbidden"


class NotFound(OffloadError):
    status = HTTPStatus.NOT_FOUND
    title = "Not found"


class NotGenerated(NotFound):
    """A HEAD of a file nobody has generated yet: a HEAD never starts a generation."""

    title = "Not generated"


class Conflict(OffloadError):
    status = HTTPStatus.CONFLICT
    title = "Conflict"


class UnsupportedMediaType(OffloadError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    title = "Unsupported media type"


class PayloadTooLarge(OffloadError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    title = "Payload too large"


class RateLimited(OffloadError):
    status = HTTPStatus.TOO_MANY_REQUESTS
    title = "Rate limit exceeded"


class GenerationFailed(OffloadError):
    status = HTTPStatus.BAD_GATEWAY
    title = "Generation failed"


class DependencyUnavailable(OffloadError):
    """A dependency (DynamoDB, S3, a generator's data source) failed or timed out."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    title = "Service unavailable"


class GenerationTimedOut(DependencyUnavailable):
    title = "Generation timed out"
