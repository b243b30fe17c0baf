"""Real clients against the local stack (the integration suite's session fixture, shared)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import NoReturn

import pytest
import requests

from offload.feeds.outcome import Outcome
from tests.integration.conftest import (
    RunningStack,
    create_stack_key,
    local_stack,  # noqa: F401 - the same session fixture, shared by both suites
    wait_for_hit,
)
from tests.support import cache_status

HERE = Path(__file__).parent
FORMATS = ("json", "xml")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}


def require(command: str) -> str:
    """The command's path; skipped (with the reason) where it is absent, failed in CI."""
    path = shutil.which(command)
    if path is None:
        absent(f"{command} is not installed (.ci/run installs it)")
    return path


def absent(reason: str) -> NoReturn:
    """A runtime the suite needs is not on this machine: skip here, fail in CI (which has it)."""
    if in_ci():
        pytest.fail(f"CI must run every suite: {reason}")
    pytest.skip(reason)


def client_environment() -> dict[str, str]:
    """The environment for client processes: everything here is loopback, so no proxy."""
    return {**os.environ, "NO_PROXY": "*", "no_proxy": "*"}


@dataclass(frozen=True)
class Served:
    """A feed URL whose file is in the bucket, the key to ask with, and the inline MISS body."""

    url: str
    key: str
    body: bytes
    endpoint_url: str

    def warm(self) -> None:
        """Make sure the next request is answered with a redirect (a HIT)."""
        with requests.Session() as session:
            session.trust_env = False
            hit = wait_for_hit(session, self.url, self.key)
        assert hit.status_code == HTTPStatus.TEMPORARY_REDIRECT, hit.headers


@pytest.fixture(scope="session", params=FORMATS)
def served(request: pytest.FixtureRequest, local_stack: RunningStack) -> Served:  # noqa: F811
    """The catalog in one format, generated once: its MISS body is what every client must get."""
    key, _ = create_stack_key(local_stack)
    url = local_stack.url(f"/feeds/catalog.{request.param}")
    with requests.Session() as session:
        session.trust_env = False
        miss = session.get(url, headers={"X-Api-Key": key}, allow_redirects=False, timeout=30)
    assert miss.status_code == HTTPStatus.OK
    assert cache_status(miss.headers) == Outcome.STORED
    return Served(url, key, miss.content, local_stack.endpoint_url)


@pytest.fixture
def hit(served: Served) -> Served:
    """The served feed, answered with a redirect from now on."""
    served.warm()
    return served
