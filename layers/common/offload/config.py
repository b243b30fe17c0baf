"""Settings, read once per container from the environment into a frozen dataclass."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, get_type_hints

TABLE_NAME = "TABLE_NAME"
BUCKET_NAME = "BUCKET_NAME"
SIGNED_URL_TTL_SECONDS = "SIGNED_URL_TTL_SECONDS"
RATE_LIMIT_WINDOW_SECONDS = "RATE_LIMIT_WINDOW_SECONDS"
DEFAULT_HOURLY_LIMIT = "DEFAULT_HOURLY_LIMIT"
CLIENT_CACHE_SECONDS = "CLIENT_CACHE_SECONDS"
LOCK_LEASE_SECONDS = "LOCK_LEASE_SECONDS"
LOCK_WAIT_SECONDS = "LOCK_WAIT_SECONDS"
LOCK_POLL_SECONDS = "LOCK_POLL_SECONDS"
FAILED_GENERATION_SECONDS = "FAILED_GENERATION_SECONDS"
INLINE_LIMIT_BYTES = "INLINE_LIMIT_BYTES"
RETRY_AFTER_SECONDS = "RETRY_AFTER_SECONDS"
AWS_TIMEOUT_SECONDS = "AWS_TIMEOUT_SECONDS"
AWS_MAX_ATTEMPTS = "AWS_MAX_ATTEMPTS"
CLOUDFRONT_DOMAIN = "CLOUDFRONT_DOMAIN"
CLOUDFRONT_DOMAIN_PARAMETER = "CLOUDFRONT_DOMAIN_PARAMETER"
CLOUDFRONT_KEY_ID = "CLOUDFRONT_KEY_ID"
CLOUDFRONT_PRIVATE_KEY_PARAMETER = "CLOUDFRONT_PRIVATE_KEY_PARAMETER"
POINTER_MAX_AGE_SECONDS = "POINTER_MAX_AGE_SECONDS"
POINTER_STALE_SECONDS = "POINTER_STALE_SECONDS"
IMMUTABLE_MAX_AGE_SECONDS = "IMMUTABLE_MAX_AGE_SECONDS"
REDIRECT_MAX_AGE_SECONDS = "REDIRECT_MAX_AGE_SECONDS"
UNFINISHED_MAX_AGE_SECONDS = "UNFINISHED_MAX_AGE_SECONDS"
SUPERSEDED_RETENTION_SECONDS = "SUPERSEDED_RETENTION_SECONDS"
INVALIDATION_SHARDS = "INVALIDATION_SHARDS"
GENERATOR_FUNCTION_NAME = "GENERATOR_FUNCTION_NAME"
USAGE_RETENTION_DAYS = "USAGE_RETENTION_DAYS"
EVENT_BUS_NAME = "EVENT_BUS_NAME"
ORIGIN_BASE_URL = "ORIGIN_BASE_URL"
ORIGIN_CREDENTIAL_HEADER = "ORIGIN_CREDENTIAL_HEADER"
ORIGIN_CREDENTIAL_PARAMETER = "ORIGIN_CREDENTIAL_PARAMETER"
ORIGIN_CREDENTIAL_SECRET = "ORIGIN_CREDENTIAL_SECRET"
OFFLOAD_APP = "OFFLOAD_APP"

# A synchronous Lambda response is at most 6 MB, headers and JSON envelope included.
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024
# One TransactWriteItems writes at most 100 items: an invalidation's shards, all at once.
MAX_INVALIDATION_SHARDS = 100
MAX_SIGNED_URL_TTL = 3600
# A plugin module's dotted name, as `import` takes it.
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class ConfigurationError(RuntimeError):
    """A setting is missing or malformed; the container cannot serve."""


@dataclass(frozen=True, slots=True)
class Check:
    """A rule a setting's value must follow, and how to say it."""

    holds: Callable[[Any], bool]
    says: str


def at_least(low: float, high: float | None = None) -> Check:
    if high is None:
        return Check(lambda value: value >= low, f"must be at least {low}")
    return Check(lambda value: low <= value <= high, f"must be between {low} and {high}")


POSITIVE = Check(lambda value: value > 0, "must be positive")
NOT_NEGATIVE = at_least(0)
HTTP_URL = Check(
    lambda value: re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value) is not None,
    "must be an http:// or https:// URL without query or fragment",
)
# An HTTP header name (RFC 9110's token).
TOKEN = Check(
    lambda value: re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", value) is not None,
    "must be an HTTP header name",
)


def setting(variable: str, default: Any = MISSING, check: Check | None = None) -> Any:
    """A field of Settings: the variable it is read from, its default and its rule."""
    return field(default=default, metadata={"variable": variable, "check": check})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a function needs to know about its environment, each setting declared once:
    its variable, its default (absent means required) and the rule its value follows."""

    table_name: str = setting(TABLE_NAME)
    # Only the feeds function stores and signs files; the others run without a bucket.
    bucket_name: str | None = setting(BUCKET_NAME, None)
    signed_url_ttl: int = setting(SIGNED_URL_TTL_SECONDS, 60, at_least(1, MAX_SIGNED_URL_TTL))
    rate_limit_window: int = setting(RATE_LIMIT_WINDOW_SECONDS, 3600, POSITIVE)
    # What `offload keys create` gives a key when no --hourly-limit is named.
    default_hourly_limit: int = setting(DEFAULT_HOURLY_LIMIT, 1000, POSITIVE)
    client_cache_seconds: float = setting(CLIENT_CACHE_SECONDS, 30.0, NOT_NEGATIVE)
    # A rebuild lock's lease. Its owner renews it every third of it while it works, so a
    # lock whose owner is gone is free within this time, and a live one is never lost.
    lock_lease_seconds: float = setting(LOCK_LEASE_SECONDS, 6.0, POSITIVE)
    # A waiter answers within API Gateway's 30 s: at most this wait, then its own generation.
    lock_wait_seconds: float = setting(LOCK_WAIT_SECONDS, 10.0, at_least(0, 25))
    lock_poll_seconds: float = setting(LOCK_POLL_SECONDS, 0.1, POSITIVE)
    # How long requests report a failed background generation before the next one starts
    # it again (a dependency failure is reported for RETRY_AFTER_SECONDS instead).
    failed_generation_seconds: float = setting(FAILED_GENERATION_SECONDS, 60.0, POSITIVE)
    inline_limit_bytes: int = setting(
        INLINE_LIMIT_BYTES, 5 * 1024 * 1024, at_least(1, LAMBDA_RESPONSE_LIMIT)
    )
    retry_after_seconds: int = setting(RETRY_AFTER_SECONDS, 5, POSITIVE)
    # Every AWS call, boto3's and PynamoDB's alike: fail fast behind a 30 s gateway.
    aws_timeout_seconds: float = setting(AWS_TIMEOUT_SECONDS, 5.0, POSITIVE)
    aws_max_attempts: int = setting(AWS_MAX_ATTEMPTS, 3, at_least(1, 10))
    cloudfront_domain: str | None = setting(CLOUDFRONT_DOMAIN, None)
    cloudfront_domain_parameter: str | None = setting(CLOUDFRONT_DOMAIN_PARAMETER, None)
    cloudfront_key_id: str | None = setting(CLOUDFRONT_KEY_ID, None)
    cloudfront_private_key_parameter: str | None = setting(CLOUDFRONT_PRIVATE_KEY_PARAMETER, None)
    pointer_max_age: int = setting(POINTER_MAX_AGE_SECONDS, 5, NOT_NEGATIVE)
    pointer_stale_while_revalidate: int = setting(POINTER_STALE_SECONDS, 30, NOT_NEGATIVE)
    immutable_max_age: int = setting(IMMUTABLE_MAX_AGE_SECONDS, 31_536_000, POSITIVE)
    redirect_max_age: int = setting(REDIRECT_MAX_AGE_SECONDS, 5, NOT_NEGATIVE)
    unfinished_max_age: int = setting(UNFINISHED_MAX_AGE_SECONDS, 10, NOT_NEGATIVE)
    # How long a superseded collection version (and a page it alone names) stays readable:
    # longer than anyone who read its pointer could still be following its pages.
    superseded_retention: int = setting(SUPERSEDED_RETENTION_SECONDS, 86_400, POSITIVE)
    # Items per invalidation scope, each read by 1/N of feed requests: one item serves 3,000
    # strongly consistent reads a second, so 10 hold some 29,000 requests a second (bench/
    # hotkeys.py), three times API Gateway's default regional quota. Writers and readers
    # must agree: README "Hot keys" says how to change it on a live table.
    invalidation_shards: int = setting(
        INVALIDATION_SHARDS, 10, at_least(1, MAX_INVALIDATION_SHARDS)
    )
    # The function that runs generations too long for API Gateway's 30 s, asynchronously.
    generator_function_name: str | None = setting(GENERATOR_FUNCTION_NAME, None)
    # How long a client's usage counts stay readable (`offload usage`), by DynamoDB's TTL.
    usage_retention_days: int = setting(USAGE_RETENTION_DAYS, 90, POSITIVE)
    # Where a background generation announces that it ended (EventBridge, name or ARN).
    event_bus_name: str = setting(EVENT_BUS_NAME, "default")
    # Where origin-backed feeds fetch from: the team's API in this environment.
    origin_base_url: str | None = setting(ORIGIN_BASE_URL, None, HTTP_URL)
    # The origin's credential, one header value, read once per container from an SSM
    # SecureString or a Secrets Manager secret (at most one of them); never logged.
    origin_credential_header: str = setting(ORIGIN_CREDENTIAL_HEADER, "Authorization", TOKEN)
    origin_credential_parameter: str | None = setting(ORIGIN_CREDENTIAL_PARAMETER, None)
    origin_credential_secret: str | None = setting(ORIGIN_CREDENTIAL_SECRET, None)
    # The deployment's own modules (its feeds and collections), comma-separated; see plugins.
    app: str = setting(OFFLOAD_APP, "")

    @property
    def app_modules(self) -> tuple[str, ...]:
        """The plugin modules OFFLOAD_APP names, in order."""
        return app_modules(self.app)

    @property
    def signs_with_cloudfront(self) -> bool:
        """Whether redirects go to CloudFront signed URLs instead of S3 presigned ones."""
        return self.cloudfront_key_id is not None

    def __post_init__(self) -> None:
        for declared in fields(self):
            check, value = declared.metadata["check"], getattr(self, declared.name)
            if check is not None and value is not None and not check.holds(value):
                raise ConfigurationError(f"{declared.metadata['variable']} {check.says}")
        app_modules(self.app)  # a malformed name fails here, before anything imports it
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

        if self.origin_credential_parameter and self.origin_credential_secret:
            raise ConfigurationError(
                f"the origin's credential comes from {ORIGIN_CREDENTIAL_PARAMETER} or "
                f"{ORIGIN_CREDENTIAL_SECRET}, not both"
            )

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from an environment-like mapping; raise on a missing or bad value."""
        types = get_type_hints(cls)
        values: dict[str, Any] = {}
        for declared in fields(cls):
            variable = declared.metadata["variable"]
            raw = env.get(variable, "").strip()
            if raw:
                values[declared.name] = _parse(variable, raw, types[declared.name])
            elif declared.default is MISSING:
                raise ConfigurationError(f"{variable} is not set")
        return cls(**values)


def app_modules(value: str) -> tuple[str, ...]:
    """`"a, b.c"` as `("a", "b.c")`; ConfigurationError for a name `import` cannot take."""
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    for name in names:
        if not _MODULE.fullmatch(name):
            raise ConfigurationError(f"{OFFLOAD_APP} names {name!r}, which is not a module name")
    return names


def default_of(name: str) -> Any:
    """The default of one setting, by field name."""
    (declared,) = (declared for declared in fields(Settings) if declared.name == name)
    return declared.default


@functools.cache
def get_settings() -> Settings:
    """The container's settings, read from the environment on first use."""
    return Settings.from_mapping(os.environ)


def _parse(variable: str, raw: str, kind: Any) -> Any:
    if kind not in (int, float):
        return raw
    try:
        return kind(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{variable} must be a number, got {raw!r}") from exc
