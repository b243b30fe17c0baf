"""An AWS outage under the running stack: clean 503s while it lasts, nothing lost after."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from urllib.parse import urlsplit

import pytest
import requests

from offload.config import default_of
from tests.support import match
from tests.support.stack import RunningStack, wait_for_hit

# Stops the stack's emulator for seconds, timed against the clock: run alone.
pytestmark = pytest.mark.serial

ADMIN = {"X-Api-Key": "demo-admin-key"}


def answering(url: str) -> bool:
    address = urlsplit(url)
    try:
        with socket.create_connection((address.hostname, address.port), timeout=1):
            return True
    except OSError:
        return False


def until(up: bool, url: str) -> None:
    deadline = time.monotonic() + 15
    while answering(url) is not up:
        assert time.monotonic() < deadline, f"the emulator did not go {'up' if up else 'down'}"
        time.sleep(0.05)


@contextmanager
def emulator_down(stack: RunningStack) -> Iterator[None]:
    """SIGUSR1 takes the stack's AWS emulator down, SIGUSR2 brings it back (as `make run`)."""
    os.kill(stack.pid, signal.SIGUSR1)
    until(False, stack.endpoint_url)
    try:
        yield
    finally:
        os.kill(stack.pid, signal.SIGUSR2)
        until(True, stack.endpoint_url)


def assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    # The stack runs on the default RETRY_AFTER_SECONDS.
    assert response.headers["Retry-After"] == str(default_of("retry_after_seconds"))
    assert "Location" not in response.headers


def test_an_outage_is_503s_while_it_lasts_and_nothing_is_lost(local_stack, http, make_key):
    # GIVEN a client with a recorded file, and a user with one recorded match
    key, client_id = make_key()
    feed = local_stack.url("/feeds/catalog.json?category=audio")
    http.get(feed, headers={"X-Api-Key": key}, timeout=30)
    before = wait_for_hit(http, feed, key)
    assert before.status_code == HTTPStatus.TEMPORARY_REDIRECT
    user = f"outage-{uuid.uuid4().hex[:8]}"
    first = match(f"{user}-1", user, finished_at="2026-11-21T18:00:00Z")
    second = match(f"{user}-2", user, finished_at="2026-11-21T19:00:00Z")
    assert http.post(local_stack.url("/matches"), headers=ADMIN, json=first).ok
    version = local_stack.url(f"/users/{user}/matches/version")
    listed = http.get(version, timeout=30).json()

    # WHEN AWS is unreachable, every kind of request is a clean 503 that redirects nowhere
    with emulator_down(local_stack):
        assert_unavailable(http.get(feed, headers={"X-Api-Key": key}, allow_redirects=False))
        assert_unavailable(http.get(version, timeout=30))
        assert_unavailable(http.post(local_stack.url("/matches"), headers=ADMIN, json=second))
        assert_unavailable(
            http.post(local_stack.url("/invalidations"), headers=ADMIN, json={"client": client_id})
        )

    # THEN once it is back the file is still a hit, the refused recording made no version,
    # and sending it again records it
    after = wait_for_hit(http, feed, key)
    assert urlsplit(after.headers["Location"]).path == urlsplit(before.headers["Location"]).path
    assert http.get(after.headers["Location"], timeout=30).ok
    assert http.get(version, timeout=30).json() == listed
    assert http.post(local_stack.url("/matches"), headers=ADMIN, json=second).status_code == 201
    index = http.get(local_stack.url(f"/users/{user}/matches/index"), timeout=30).json()
    assert index["match_ids"] == [second["id"], first["id"]]
