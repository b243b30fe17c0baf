"""Settings, read once per container from the environment into a frozen dataclass."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

TABLE_NAME = "TABLE_NAME"
BUCKET_NAME = "BUCKET_NAME"
SIGNED_URL_TTL_SECONDS = "SIGNED_URL_TTL_SECONDS"
RATE_LIMIT_WINDOW_SECONDS = "RATE_LIMIT_WINDOW_SECONDS"
DEFAULT_HOURLY_LIMIT = "DEFAULT_HOURLY_LIMIT"
CLIENT_CACHE_SECONDS = "CLIENT_CACHE_SECONDS"
LOCK_LEASE_SECONDS = "LOCK_LEASE_SECONDS"
LOCK_WAIT_SECONDS = "LOCK_WAIT_SECONDS"
LOCK_POLL_SECONDS = "LOCK_POLL_SECONDS"
INLINE_LIMIT_BYTES = "INLINE_LIMIT_BYTES"
RETRY_AFTER_SECONDS = "RETRY_AFTER_SECONDS"
AWS_TIMEOUT_SECONDS = "AWS_TIMEOUT_SECONDS"
CLOUDFRONT_DOMAIN = "CLOUDFRONT_DOMAIN"
CLOUDFRONT_DOMAIN_PARAMETER = "CLOUDFRONT_DOMAIN_PARAMETER"
CLOUDFRONT_KEY_ID = "CLOUDFRONT_KEY_ID"
CLOUDFRONT_PRIVATE_KEY_PARAMETER = "CLOUDFRONT_PRIVATE_KEY_PARAMETER"
POINTER_MAX_AGE_SECONDS = "POINTER_MAX_AGE_SECONDS"
POINTER_STALE_SECONDS = "POINTER_STALE_SECONDS"
IMMUTABLE_MAX_AGE_SECONDS = "IMMUTABLE_MAX_AGE_SECONDS"
REDIRECT_MAX_AGE_SECONDS = "REDIRECT_MAX_AGE_SECONDS"
UNFINISHED_MAX_AGE_SECONDS = "UNFINISHED_MAX_AGE_SECONDS"

# A synchronous Lambda response is at most 6 MB, headers and JSON envelope included.
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024
MAX_SIGNED_URL_TTL = 3600

_N = TypeVar("_N", int, float)


class ConfigurationError(RuntimeError):
    """A setting is missing or malformed; the container cannot serve."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a function needs to know about its environment."""

    table_name: str
    bucket_name: str
    signed_url_ttl: int = 60
    rate_limit_window: int = 3600
    default_hourly_limit: int = 1000
    client_cache_seconds: float = 30.0
    lock_lease_seconds: float = 60.0
    lock_wait_seconds: float = 10.0
    lock_poll_seconds: float = 0.1
    inline_limit_bytes: int = 5 * 1024 * 1024
    retry_after_seconds: int = 5
    aws_timeout_seconds: float = 5.0
    cloudfront_domain: str | None = None
    cloudfront_domain_parameter: str | None = None
    cloudfront_key_id: str | None = None
    cloudfront_private_key_parameter: str | None = None
    pointer_max_age: int = 5
    pointer_stale_while_revalidate: int = 30
    immutable_max_age: int = 31_536_000
    redirect_max_age: int = 5
    unfinished_max_age: int = 10

    @property
    def signs_with_cloudfront(self) -> bool:
        """Whether redirects go to CloudFront signed URLs instead of S3 presigned ones."""
        return self.cloudfront_key_id is not None

    def __post_init__(self) -> None:
        if not 1 <= self.signed_url_ttl <= MAX_SIGNED_URL_TTL:
            raise ConfigurationError(
                f"{SIGNED_URL_TTL_SECONDS} must be between 1 and {MAX_SIGNED_URL_TTL}"
            )
        if not 0 < self.inline_limit_bytes <= LAMBDA_RESPONSE_LIMIT:
            raise ConfigurationError(
                f"{INLINE_LIMIT_BYTES} must be positive and at most {LAMBDA_RESPONSE_LIMIT}"
            )
        if self.lock_wait_seconds >= self.lock_lease_seconds:
            raise ConfigurationError(
                f"{LOCK_WAIT_SECONDS} must be shorter than {LOCK_LEASE_SECONDS}"
            )
        for name in ("rate_limit_window", "default_hourly_limit", "lock_poll_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive")
        cloudfront = (
            self.cloudfront_key_id,
            self.cloudfront_private_key_parameter,
            self.cloudfront_domain or self.cloudfront_domain_parameter,
        )
        # Half a CloudFront configuration would silently fall back to S3 URLs.
        if any(cloudfront) and not all(cloudfront):
            raise ConfigurationError(
                f"CloudFront signing needs {CLOUDFRONT_KEY_ID}, "
                f"{CLOUDFRONT_PRIVATE_KEY_PARAMETER} and {CLOUDFRONT_DOMAIN_PARAMETER} "
                f"(or {CLOUDFRONT_DOMAIN}) together"
            )

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from an environment-like mapping; raise on a bad value."""
        return cls(
            table_name=_required(env, TABLE_NAME),
            bucket_name=_required(env, BUCKET_NAME),
            signed_url_ttl=_number(env, SIGNED_URL_TTL_SECONDS, int, 60),
            rate_limit_window=_number(env, RATE_LIMIT_WINDOW_SECONDS, int, 3600),
            default_hourly_limit=_number(env, DEFAULT_HOURLY_LIMIT, int, 1000),
            client_cache_seconds=_number(env, CLIENT_CACHE_SECONDS, float, 30.0),
            lock_lease_seconds=_number(env, LOCK_LEASE_SECONDS, float, 60.0),
            lock_wait_seconds=_number(env, LOCK_WAIT_SECONDS, float, 10.0),
            lock_poll_seconds=_number(env, LOCK_POLL_SECONDS, float, 0.1),
            inline_limit_bytes=_number(env, INLINE_LIMIT_BYTES, int, 5 * 1024 * 1024),
            retry_after_seconds=_number(env, RETRY_AFTER_SECONDS, int, 5),
            aws_timeout_seconds=_number(env, AWS_TIMEOUT_SECONDS, float, 5.0),
            cloudfront_domain=env.get(CLOUDFRONT_DOMAIN) or None,
            cloudfront_domain_parameter=env.get(CLOUDFRONT_DOMAIN_PARAMETER) or None,
            cloudfront_key_id=env.get(CLOUDFRONT_KEY_ID) or None,
            cloudfront_private_key_parameter=env.get(CLOUDFRONT_PRIVATE_KEY_PARAMETER) or None,
            pointer_max_age=_number(env, POINTER_MAX_AGE_SECONDS, int, 5),
            pointer_stale_while_revalidate=_number(env, POINTER_STALE_SECONDS, int, 30),
            immutable_max_age=_number(env, IMMUTABLE_MAX_AGE_SECONDS, int, 31_536_000),
            redirect_max_age=_number(env, REDIRECT_MAX_AGE_SECONDS, int, 5),
            unfinished_max_age=_number(env, UNFINISHED_MAX_AGE_SECONDS, int, 10),
        )


@functools.cache
def get_settings() -> Settings:
    """The container's settings, read from the environment on first use."""
    return Settings.from_mapping(os.environ)


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"{name} is not set")
    return value


def _number(env: Mapping[str, str], name: str, kind: type[_N], default: _N) -> _N:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from exc
