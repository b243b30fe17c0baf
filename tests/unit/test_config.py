"""Settings: read once from the environment, with clear errors for bad values."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from offload.config import ConfigurationError, Settings, get_settings
from offload.feeds import Feed
from offload.feeds.registry import new_registry
from offload.feeds.service import FeedService
from offload_local.template import load


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
        ({"TABLE_NAME": "t", "BUCKET_NAME": "b", "INLINE_LIMIT_BYTES": "7000000"}, "between"),
        ({"TABLE_NAME": "t", "BUCKET_NAME": "b", "LOCK_WAIT_SECONDS": "90"}, "between"),
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


@pytest.mark.parametrize(
    ("timeout", "lease", "generator", "message"),
    [
        (900, 60, "generator", "Lambda stops at 15 minutes"),
        (40, 60, None, "names no function to run it in"),
    ],
)
def test_a_feed_must_finish_where_it_runs(
    runtime, timeout, lease, generator, message
):
    registry = new_registry()
    registry.register(
        Feed(
            name="slow",
            formats={"json": "application/json"},
            generate=bytes,
            generation_timeout_seconds=timeout,
        )
    )
    settings = replace(
        runtime.settings,
        lock_lease_seconds=lease,
        lock_wait_seconds=5,
        generator_function_name=generator,
    )
    with pytest.raises(ConfigurationError, match=message):
        FeedService(replace(runtime, settings=settings), registry=registry)


def test_the_templates_parameter_defaults_are_the_settings_defaults():
    # GIVEN the variables the template sets from stack parameters
    template = load()
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    from_parameters = {
        name: template["Parameters"][value["Ref"]]["Default"]
        for name, value in variables.items()
        if isinstance(value, dict) and value.get("Ref") in template["Parameters"]
    }
    # THEN a deployment with no overrides runs on the defaults Settings declares
    declared = {f.metadata["variable"]: f.default for f in fields(Settings) if f.metadata}
    compared = {name: declared[name] for name in from_parameters if name in declared}
    assert len(compared) >= 8
    # An empty parameter sets an empty variable, which Settings reads as unset.
    defaults = {
        name: None if from_parameters[name] == "" else from_parameters[name] for name in compared
    }
    assert defaults == compared
