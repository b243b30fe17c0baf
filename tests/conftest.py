"""Shared fixtures: fake AWS, the table and bucket from template.yaml, events, handlers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import EVENTS, ROOT, TEST_ENVIRONMENT, reset_container_state

# The local stack's session fixture, shared by the integration and e2e suites.
pytest_plugins = ("tests.support.stack",)


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and the template's names; never a real endpoint."""
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_DYNAMODB",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in TEST_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    reset_container_state()
    yield
    reset_container_state()


@pytest.fixture
def load_event() -> Callable[[str], dict]:
    """Read `events/<name>.json`, the same files `sam local invoke -e` takes."""

    def load_event(name: str) -> dict:
        return json.loads((EVENTS / f"{name}.json").read_text())

    return load_event


@pytest.fixture
def events_dir() -> Path:
    return EVENTS


def pytest_collection_modifyitems(config: pytest.Config, items: list[Any]) -> None:
    for item in items:
        kind = Path(str(item.fspath)).relative_to(ROOT / "tests").parts[0]
        if kind in {"integration", "e2e"}:
            item.add_marker(getattr(pytest.mark, kind))
