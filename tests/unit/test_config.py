"""Settings: read once from the environment, with clear errors for bad values."""

from __future__ import annotations

from dataclasses import replace

import pytest

from offload.config import ConfigurationError, Settings, get_settings
from offload.feeds import Feed
from offload.feeds.registry import FeedRegistry
from offload.feeds.service import FeedService


def test_defaults_and_overrides():
    settings = Settings.from_mapping(
        {"TABLE_NAME": "t", "BUCKET_NAME": "b", "SIGNED_URL_TTL_SECONDS": "30"}
    )
    assert settings.signed_url_ttl == 30
    assert settings.rate_limit_window == 3600
    assert settings.default_hourly_limit == 1000


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BUCKET_NAME": "b"}, "TABLE_NAME is not set"),
        ({"TABLE_NAME": "t", "BUCKET_NAME": "b", "SIGNED_URL_TTL_SECONDS": "soon"}, "number"),
        ({"TABLE_NAME": "t", "BUCKET_NAME": "b", "SIGNED_URL_TTL_SECONDS": "86400"}, "between"),
        ({"TABLE_NAME": "t", "BUCKET_NAME": "b", "INLINE_LIMIT_BYTES": "7000000"}, "at most"),
        ({"TABLE_NAME": "t", "BUCKET_NAME": "b", "LOCK_WAIT_SECONDS": "90"}, "shorter"),
        ({"TABLE_NAME": "t", "BUCKET_NAME": "b", "CLOUDFRONT_DOMAIN": "d.net"}, "CLOUDFRONT"),
    ],
)
def test_bad_settings_are_refused_with_the_variable_named(env, message):
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_mapping(env)


def test_settings_are_read_once(monkeypatch):
    first = get_settings()
    monkeypatch.setenv("SIGNED_URL_TTL_SECONDS", "17")
    assert get_settings() is first
    with pytest.raises(AttributeError):
        first.signed_url_ttl = 5  # type: ignore[misc]


def test_a_feed_cannot_outlast_the_gateway():
    with pytest.raises(ValueError, match="generation_timeout_seconds"):
        Feed(
            name="slow",
            formats={"json": "application/json"},
            generate=bytes,
            generation_timeout_seconds=40,
        )


def test_a_feed_cannot_outlast_the_lock_lease(runtime):
    registry = FeedRegistry()
    registry.register(
        Feed(
            name="slow",
            formats={"json": "application/json"},
            generate=bytes,
            generation_timeout_seconds=20,
        )
    )
    short_lease = replace(
        runtime, settings=replace(runtime.settings, lock_lease_seconds=15, lock_wait_seconds=5)
    )
    with pytest.raises(ConfigurationError, match="lock lease"):
        FeedService(short_lease, registry=registry)
