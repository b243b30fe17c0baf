"""OFFLOAD_APP: the plugin modules a deployment names, loaded once, failing clearly."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from offload.config import ConfigurationError, Settings
from offload.plugins import Plugins, load_plugins
from tests.support import reset_container_state

FEED_MODULE = """
from offload.feeds import Feed

CALLS = []


def register(plugins):
    CALLS.append(plugins)
    plugins.feeds.register(Feed("{name}", {{"json": "application/json"}}, lambda request: b"{{}}"))
"""


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def write_module(where: Path, source: str) -> str:
    name = f"plugin_{uuid.uuid4().hex[:8]}"
    (where / f"{name}.py").write_text(source)
    return name


def test_the_template_names_the_demo_which_registers_its_feeds_and_collections():
    plugins = load_plugins(
        Settings.from_mapping({"TABLE_NAME": "t", "OFFLOAD_APP": "offload_demo"}).app_modules,
        Plugins(),
    )

    assert {feed.name for feed in plugins.feeds} == {"catalog", "catalog-export", "price-list"}
    assert plugins.collections.resolve("users/42/matches").path == "users/42/matches"
    assert plugins.collections.resolve("repos/offload/releases").path == "repos/offload/releases"
    assert plugins.modules == ["offload_demo"]


def test_each_module_registers_once_however_often_it_is_loaded(module_dir):
    name = write_module(module_dir, FEED_MODULE.format(name="orders"))
    plugins = Plugins()

    load_plugins([name], plugins)
    load_plugins([name, name], plugins)

    assert [feed.name for feed in plugins.feeds] == ["orders"]
    assert len(__import__(name).CALLS) == 1


def test_several_modules_comma_separated_are_loaded_in_order(module_dir):
    first = write_module(module_dir, FEED_MODULE.format(name="first"))
    second = write_module(module_dir, FEED_MODULE.format(name="second"))
    settings = Settings.from_mapping({"TABLE_NAME": "t", "OFFLOAD_APP": f" {first}, {second} "})

    plugins = load_plugins(settings.app_modules, Plugins())

    assert plugins.modules == [first, second]
    assert [feed.name for feed in plugins.feeds] == ["first", "second"]


def test_a_missing_module_is_a_configuration_error_naming_it():
    with pytest.raises(ConfigurationError, match=r"'no_such_plugin'.*not installed"):
        load_plugins(["no_such_plugin"], Plugins())


def test_a_module_failing_to_import_is_a_configuration_error_naming_it(module_dir):
    name = write_module(module_dir, "import json\nraise RuntimeError('the table is gone')\n")
    with pytest.raises(ConfigurationError, match=f"{name!r} failed to import.*the table is gone"):
        load_plugins([name], Plugins())


def test_a_module_importing_something_missing_names_the_module(module_dir):
    name = write_module(module_dir, "import not_installed_dependency\n")
    with pytest.raises(ConfigurationError, match=f"{name!r} failed to import.*not_installed"):
        load_plugins([name], Plugins())


def test_a_module_without_register_is_a_configuration_error(module_dir):
    name = write_module(module_dir, "FEEDS = []\n")
    with pytest.raises(ConfigurationError, match=f"{name!r} has no register"):
        load_plugins([name], Plugins())


def test_a_failing_registration_is_a_configuration_error_naming_the_module(module_dir):
    name = write_module(module_dir, FEED_MODULE.format(name="Not A Slug"))
    with pytest.raises(ConfigurationError, match=f"{name!r} failed to register.*not a slug"):
        load_plugins([name], Plugins())


def test_a_malformed_module_name_fails_with_the_settings():
    with pytest.raises(ConfigurationError, match="OFFLOAD_APP names 'offload-demo'"):
        Settings.from_mapping({"TABLE_NAME": "t", "OFFLOAD_APP": "offload-demo"})


SERVING_FUNCTIONS = [
    "FeedsFunction",
    "FeedGeneratorFunction",
    "CollectionsFunction",
    "InvalidationsFunction",
]


@pytest.mark.parametrize("logical_id", SERVING_FUNCTIONS)
def test_a_function_with_a_broken_plugin_fails_its_cold_start(
    monkeypatch, aws, function, logical_id
):
    from offload_local.lambdas import load_handler

    monkeypatch.setenv("OFFLOAD_APP", "no_such_plugin")
    reset_container_state()  # a new container reads the environment again
    with pytest.raises(ConfigurationError, match="'no_such_plugin'"):
        load_handler(function(logical_id))
