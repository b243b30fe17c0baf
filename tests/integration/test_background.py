"""A long generation through the local stack: 202, then the file the generator function stored.

`catalog-export` may generate for longer than API Gateway waits, so the feeds function starts
the generator function with an asynchronous Lambda invoke (answered by the local stack's
Lambda API, as by Lambda) and answers 202; a client that honours `Retry-After` and asks the
`Location` again is then redirected to the stored file.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from http import HTTPStatus
from urllib.parse import urljoin

import httpx
import requests

from offload_demo.catalog import DEMO_PRODUCTS
from tests.support import cache_status
from tests.support.stack import RunningStack

EXPORT = "/feeds/catalog-export.jsonl"
# Plenty for the demo catalog; the generator function itself may take minutes in AWS.
PATIENCE_SECONDS = 60


def poll(client: httpx.Client, url: str, key: str) -> tuple[list[httpx.Response], httpx.Response]:
    """Ask as a polite client does: follow `Location` after `Retry-After` until not 202."""
    pending: list[httpx.Response] = []
    deadline = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < deadline:
        answer = client.get(url, headers={"X-Api-Key": key})
        if answer.status_code != HTTPStatus.ACCEPTED:
            return pending, answer
        pending.append(answer)
        url = urljoin(url, answer.headers["Location"])
        # Honoured, but capped: the demo export is ready in well under Retry-After.
        time.sleep(min(float(answer.headers["Retry-After"]), 0.5))
    raise AssertionError(f"still pending after {PATIENCE_SECONDS} s")


def test_a_long_generation_is_pending_then_downloads_whole(local_stack: RunningStack, make_key):
    key, _ = make_key()
    with httpx.Client(trust_env=False, timeout=30) as client:
        pending, done = poll(client, local_stack.url(EXPORT), key)
        # THEN the first answers were 202 with a status link and when to ask again
        assert pending, "a cold export must be generated in the background"
        first = pending[0]
        assert cache_status(first.headers) == "fwd=miss; detail=pending"
        assert first.headers["Location"] == EXPORT
        assert int(first.headers["Retry-After"]) >= 1
        assert first.json() == {
            "status": "pending",
            "retry_after": int(first.headers["Retry-After"]),
            "location": EXPORT,
        }
        # AND then a redirect to the stored file, generated once, whole
        assert done.status_code == HTTPStatus.TEMPORARY_REDIRECT
        assert cache_status(done.headers) == "hit"
        download = client.get(done.headers["Location"])
    assert download.status_code == HTTPStatus.OK
    assert download.headers["Content-Type"] == "application/x-ndjson"
    day = datetime.now(UTC).date().isoformat()
    disposition = download.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="catalog-export-{day}.jsonl"'
    products = [json.loads(line) for line in download.text.splitlines()]
    assert len(products) == DEMO_PRODUCTS
    assert len({product["sku"] for product in products}) == DEMO_PRODUCTS


def test_every_client_shares_the_one_background_generation(
    local_stack: RunningStack, make_key, http: requests.Session
):
    # GIVEN the export stored for one client (it is a shared feed)
    first_key, _ = make_key()
    with httpx.Client(trust_env=False, timeout=30) as client:
        _, done = poll(client, local_stack.url(EXPORT), first_key)
    assert done.status_code == HTTPStatus.TEMPORARY_REDIRECT
    # WHEN another client asks, following the redirect as requests does
    other_key, _ = make_key()
    answer = http.get(local_stack.url(EXPORT), headers={"X-Api-Key": other_key}, timeout=30)
    # THEN it downloads the same file at once, with no 202 and no new generation
    assert answer.status_code == HTTPStatus.OK
    assert [r.status_code for r in answer.history] == [HTTPStatus.TEMPORARY_REDIRECT]
    assert answer.history[0].headers["ETag"] == done.headers["ETag"]
