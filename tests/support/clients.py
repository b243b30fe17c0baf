"""Client runtimes the suites need: found, or skipped here and failed in CI."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from http import HTTPStatus
from typing import NoReturn

import pytest
import requests

from tests.support.stack import wait_for_hit


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
    # Only on a developer's machine without the runtime: .ci/run exports CI=true and
    # installs curl, Node, Java and Varnish, so there this is the failure above.
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
