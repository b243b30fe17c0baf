"""Settings: read once from the environment, with clear errors for bad values."""

from __future__ import annotations

import pytest

from offload.config import ConfigurationError, Settings, get_settings


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
