"""The demo page in a real browser: Debian's Chromium, headless, driven by Playwright.

The page is served on an origin of its own (the stack's page port) and reads the API across
origins, directly and through the edge: every request below passes the browser's CORS
checks or the test fails, as it would for a user.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.clients import absent
from tests.support.stack import RunningStack, wait_for_hit

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium; skipped where it or Playwright is missing, failed in CI."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        absent("Playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        absent("chromium is not installed (.ci/run installs it: apt-get install chromium)")
    with sync_playwright() as playwright:
        # No sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def stored_catalog(local_stack: RunningStack) -> None:
    """The demo client's catalog generated and recorded: a first miss is answered inline,
    without a digest (the edge may compress it), and the page is about the redirect."""
    with requests.Session() as http:
        http.trust_env = False
        hit = wait_for_hit(http, local_stack.url("/feeds/catalog.json"), "demo-feeds-key")
    assert hit.status_code == 307, hit.text


@pytest.fixture(params=["api", "edge"])
def page(request: pytest.FixtureRequest, browser: Any, local_stack: RunningStack) -> Iterator[Any]:
    """The demo page pointed at the API directly, or at the edge in front of it."""
    if request.param == "edge":
        if local_stack.edge_url is None:
            absent("varnishd is not installed (.ci/run installs it: apt-get install varnish)")
        api = local_stack.edge_url
    else:
        api = local_stack.base_url
    context = browser.new_context()
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto(f"{local_stack.page_url}/?api={api}")
    opened.wait_for_function("window.offload !== undefined", timeout=30_000)
    assert opened.evaluate("location.origin") != api  # another origin: CORS applies
    yield opened
    context.close()
    assert errors == []


def call(page: Any, expression: str, *arguments: Any) -> Any:
    return page.evaluate(expression, list(arguments))


def test_lists_a_users_matches_pointer_snapshot_entities(page, local_stack):
    # GIVEN a user with a few matches recorded by the admin
    user = f"page-{uuid.uuid4().hex[:10]}"
    ids = [f"m-{uuid.uuid4().hex[:10]}" for _ in range(3)]
    for minute, match_id in enumerate(ids):
        finished = f"2026-12-02T10:0{minute}:00Z"
        recorded = requests.post(
            local_stack.url("/matches"),
            json={"id": match_id, "players": [user], "finished_at": finished},
            headers={"X-Api-Key": "demo-admin-key"},
            timeout=30,
        )
        assert recorded.status_code == 201, recorded.text
    # WHEN the page lists them
    listed = call(page, "([user]) => offload.listMatches(user)", user)
    # THEN newest first, each match read in full
    assert listed["ids"] == list(reversed(ids))
    assert [match["id"] for match in listed["matches"]] == listed["ids"]


def test_the_demo_users_long_list_follows_its_pages(page):
    listed = call(page, "([user]) => offload.listMatches(user)", "42")
    assert listed["pages"] >= 1
    assert len(listed["matches"]) == len(listed["ids"]) > 0


@pytest.mark.parametrize("send", ["header", "bearer"])
def test_a_redirected_download_matches_its_digest(stored_catalog, page, send):
    result = call(
        page,
        "([send]) => offload.downloadFeed('catalog.json', {key: 'demo-feeds-key', send})",
        send,
    )
    assert result["status"] == 200, result
    assert result["redirected"] is True
    assert result["announced"] is not None
    assert result["verified"] is True, result
    assert result["size"] > 100_000


def test_link_mode_reads_the_rate_limit_and_the_file(stored_catalog, page):
    result = call(
        page, "() => offload.downloadFeed('catalog.json', {key: 'demo-feeds-key', mode: 'link'})"
    )
    assert result["status"] == 200
    assert result["verified"] is True, result
    link = result["link"]
    # The browser asked with Accept-Encoding: gzip, so the link is the gzip copy's
    assert link["content_encoding"] == "gzip"
    assert link["digest"].startswith("sha-256=:")
    assert int(result["rate"]["limit"]) > 0
    assert int(result["rate"]["remaining"]) >= 0


def test_head_reads_the_files_size_and_digest(stored_catalog, page):
    full = call(page, "() => offload.downloadFeed('catalog.json', {key: 'demo-feeds-key'})")
    head = call(
        page, "() => offload.downloadFeed('catalog.json', {key: 'demo-feeds-key', mode: 'head'})"
    )
    # THEN the 307 was followed as a HEAD (a URL signed for HEAD), to the file's metadata
    assert head["status"] == 200, head
    assert head["digest"] == full["announced"]
    # the browser reads the gzip copy: its length on the wire, not the decoded size
    assert 0 < head["size"] < full["size"]


def test_a_wrong_key_shows_its_problem(page):
    result = call(page, "() => offload.downloadFeed('catalog.json', {key: 'not-a-key'})")
    assert result["status"] == 403
    assert result["problem"]["status"] == 403
    assert result["problem"]["title"] == "Forbidden"


def test_an_admin_post_passes_its_preflight(page):
    match = {
        "id": f"m-{uuid.uuid4().hex[:10]}",
        "players": ["page-admin"],
        "finished_at": "2026-12-02T11:00:00Z",
    }
    record = "([key, match]) => offload.recordMatch(key, match)"
    result = call(page, record, "demo-admin-key", match)
    assert result["status"] == 201, result
    assert result["body"]["match"]["id"] == match["id"]
    assert set(result["body"]["versions"]) == {"page-admin"}
