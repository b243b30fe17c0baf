"""Collections through the local stack over real HTTP: the reads, pages, 304s, recording."""

from __future__ import annotations

import uuid
from http import HTTPStatus

from offload import auth
from offload.collections.store import PAGE_SIZE, CollectionStore, Entry
from offload.config import get_settings
from offload_demo.matches import MATCHES
from tests.support.collections import (
    IMMUTABLE,
    assert_cacheable,
    read_current_snapshot,
    revalidate,
)


def test_demo_user_reads_with_their_headers_and_304s(local_stack, http):
    # The pointer, the unversioned index's 307 and the immutable snapshot, each revalidated
    snapshot = read_current_snapshot(local_stack, http, "users/42/matches")
    demo = [match_id for match_id in snapshot["match_ids"] if match_id.startswith("m-10")]
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
