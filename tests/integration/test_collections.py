"""Collections through the local stack over real HTTP: the reads, pages, 304s, recording."""

from __future__ import annotations

import hashlib
import uuid
from http import HTTPStatus

import requests

from offload import auth
from offload.collections.store import PAGE_SIZE, CollectionStore, Entry
from offload.config import get_settings
from offload_demo.matches import MATCHES
from tests.support.stack import TTLS

POINTER = (
    f"public, max-age={TTLS['PointerMaxAgeSeconds']}, "
    f"stale-while-revalidate={TTLS['PointerStaleSeconds']}"
)
IMMUTABLE = "public, max-age=31536000, immutable"
REDIRECT = f"public, max-age={TTLS['RedirectMaxAgeSeconds']}"


def assert_cacheable(response: requests.Response, status: HTTPStatus, cache_control: str) -> str:
    """Status, Cache-Control and a strong ETag as the design table says; never Vary."""
    assert response.status_code == status, response.text
    assert response.headers["Cache-Control"] == cache_control
    assert "Vary" not in response.headers
    etag = response.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    if status == HTTPStatus.NOT_MODIFIED:
        assert response.content == b""
    else:
        assert etag == f'"{hashlib.sha256(response.content).hexdigest()}"'
    return etag


def revalidate(http: requests.Session, url: str, etag: str, cache_control: str) -> None:
    response = http.get(url, headers={"If-None-Match": etag}, allow_redirects=False, timeout=30)
    assert assert_cacheable(response, HTTPStatus.NOT_MODIFIED, cache_control) == etag


def test_demo_user_reads_with_their_headers_and_304s(local_stack, http):
    # The pointer: short-lived, revalidates to 304
    version_url = local_stack.url("/users/42/matches/version")
    pointer = http.get(version_url, timeout=30)
    revalidate(http, version_url, assert_cacheable(pointer, HTTPStatus.OK, POINTER), POINTER)
    version = pointer.json()["version"]

    # The unversioned index: a short-lived 307 to the current version
    index_url = local_stack.url("/users/42/matches/index")
    redirect = http.get(index_url, allow_redirects=False, timeout=30)
    etag = assert_cacheable(redirect, HTTPStatus.TEMPORARY_REDIRECT, REDIRECT)
    assert redirect.headers["Location"] == f"/users/42/matches/index?version={version}"
    revalidate(http, index_url, etag, REDIRECT)

    # The snapshot: immutable, the demo's matches newest first
    snapshot_url = local_stack.url(redirect.headers["Location"])
    snapshot = http.get(snapshot_url, timeout=30)
    revalidate(http, snapshot_url, assert_cacheable(snapshot, HTTPStatus.OK, IMMUTABLE), IMMUTABLE)
    demo = [match_id for match_id in snapshot.json()["match_ids"] if match_id.startswith("m-10")]
    assert "m-1001" in demo and demo == sorted(demo, reverse=True)  # demo ids rise with time

    # A match: final, so immutable
    match_url = local_stack.url("/matches/m-1001")
    entity = http.get(match_url, timeout=30)
    revalidate(http, match_url, assert_cacheable(entity, HTTPStatus.OK, IMMUTABLE), IMMUTABLE)
    assert "42" in entity.json()["players"]


def test_following_the_redirect_lands_on_the_snapshot(local_stack, http):
    response = http.get(local_stack.url("/users/17/matches/index"), timeout=30)
    assert_cacheable(response, HTTPStatus.OK, IMMUTABLE)
    assert response.history[0].status_code == HTTPStatus.TEMPORARY_REDIRECT
    assert response.json()["match_ids"]


def test_unknown_version_is_404_no_store(local_stack, http):
    response = http.get(local_stack.url("/users/42/matches/index?version=1"), timeout=30)
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["Cache-Control"] == "no-store"


def test_recording_a_match_moves_both_pointers_over_http(local_stack, http, make_key):
    admin_key, _ = make_key(scope=auth.SCOPE_ADMIN)
    players = [f"it-{uuid.uuid4().hex[:8]}", f"it-{uuid.uuid4().hex[:8]}"]
    before = {
        user: http.get(local_stack.url(f"/users/{user}/matches/version"), timeout=30).json()
        for user in players
    }
    match_id = f"m-it-{uuid.uuid4().hex[:8]}"
    body = {"id": match_id, "players": players, "finished_at": "2030-01-01T00:00:00Z"}
    created = http.post(
        local_stack.url("/matches"), json=body, headers={"X-Api-Key": admin_key}, timeout=30
    )
    assert created.status_code == HTTPStatus.CREATED, created.text
    for user, version in created.json()["versions"].items():
        assert int(version) > int(before[user]["version"])
        index = http.get(
            local_stack.url(f"/users/{user}/matches/index?version={version}"), timeout=30
        )
        assert index.json()["match_ids"][0] == match_id
    again = http.post(
        local_stack.url("/matches"), json=body, headers={"X-Api-Key": admin_key}, timeout=30
    )
    assert again.status_code == HTTPStatus.OK


def test_a_long_list_reads_page_by_page_following_next_links(local_stack, http, make_key):
    # GIVEN a user with 24 and a half pages of matches listed (seeded as members, in the
    # stack's table), and a version made from them
    user = f"it-long-{uuid.uuid4().hex[:8]}"
    seeded = [f"m-{user}-{number:05d}" for number in range(24 * PAGE_SIZE + PAGE_SIZE // 2)]
    CollectionStore.for_settings(get_settings()).add(
        (MATCHES.of(user), Entry(match_id, f"2029-01-01T00:00:00.{number:06d}Z"))
        for number, match_id in enumerate(seeded)
    )
    admin = {"X-Api-Key": make_key(scope=auth.SCOPE_ADMIN)[0]}
    invalidated = http.post(
        local_stack.url("/invalidations"),
        json={"collection": f"users/{user}/matches"},
        headers=admin,
        timeout=60,
    )
    assert invalidated.status_code == HTTPStatus.ACCEPTED, invalidated.text
    before = invalidated.json()["version"]

    # WHEN one more match is recorded over HTTP
    newest = f"m-{user}-new"
    body = {"id": newest, "players": [user], "finished_at": "2030-01-01T00:00:00Z"}
    created = http.post(local_stack.url("/matches"), json=body, headers=admin, timeout=30)
    assert created.status_code == HTTPStatus.CREATED, created.text

    # THEN the current index and each `next` link after it give every match once, newest
    # first, each page immutable and revalidating to a 304
    response = http.get(local_stack.url(f"/users/{user}/matches/index"), timeout=30)
    listed, links, sizes = [], [], []
    while True:
        revalidate(
            http, response.url, assert_cacheable(response, HTTPStatus.OK, IMMUTABLE), IMMUTABLE
        )
        document = response.json()
        sizes.append(len(document["match_ids"]))
        listed.extend(document["match_ids"])
        if "next" not in document:
            break
        links.append(document["next"])
        response = http.get(local_stack.url(document["next"]), timeout=30)
    assert listed == [newest, *reversed(seeded)]
    # the first page holds what is left over full pages (1 to PAGE_SIZE), each other is full
    full, left = divmod(len(listed) - 1, PAGE_SIZE)
    assert sizes == [left + 1] + [PAGE_SIZE] * full
    assert len(links) == full == 24

    # AND the version before links to the very same pages: the recording wrote none
    old = http.get(local_stack.url(f"/users/{user}/matches/index?version={before}"), timeout=30)
    assert old.json()["next"] == links[0]
    assert newest not in old.json()["match_ids"]
