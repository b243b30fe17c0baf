"""The demo's releases collection through the local stack over real HTTP: the seeded
repositories, recording, drafts, pages, invalidation and an unknown collection."""

from __future__ import annotations

import uuid
from http import HTTPStatus

from offload import auth
from offload.collections.store import PAGE_SIZE, CollectionStore, Entry
from offload.config import get_settings
from offload_demo.releases import RELEASES
from offload_demo.seed import DRAFT_RELEASE
from tests.support.collections import (
    IMMUTABLE,
    UNFINISHED,
    assert_cacheable,
    read_current_snapshot,
    revalidate,
)


def new_repo() -> str:
    return f"it-{uuid.uuid4().hex[:10]}"


def test_a_seeded_repository_reads_with_its_headers_and_304s(local_stack, http):
    # The pointer, the unversioned index's 307 and the immutable snapshot, each revalidated
    snapshot = read_current_snapshot(local_stack, http, "repos/offload/releases")
    seeded = [rid for rid in snapshot["release_ids"] if rid.startswith("r-offload-1-")]
    assert seeded == ["r-offload-1-3", "r-offload-1-2", "r-offload-1-1", "r-offload-1-0"]
    assert DRAFT_RELEASE not in snapshot["release_ids"]

    # A published release is immutable; the draft is short-lived
    release_url = local_stack.url("/releases/r-offload-1-0")
    release = http.get(release_url, timeout=30)
    revalidate(http, release_url, assert_cacheable(release, HTTPStatus.OK, IMMUTABLE), IMMUTABLE)
    assert release.json()["repo"] == "offload" and release.json()["name"] == "v1.0"
    draft = http.get(local_stack.url(f"/releases/{DRAFT_RELEASE}"), timeout=30)
    assert_cacheable(draft, HTTPStatus.OK, UNFINISHED)


def test_recording_a_release_over_http_lists_it_for_its_repository(local_stack, http, make_key):
    admin = {"X-Api-Key": make_key(scope=auth.SCOPE_ADMIN)[0]}
    repo = new_repo()
    before = http.get(local_stack.url(f"/repos/{repo}/releases/version"), timeout=30).json()
    release_id = f"r-{repo}"
    body = {"id": release_id, "repo": repo, "published_at": "2030-01-01T00:00:00Z", "name": "v1"}

    # WHEN it is recorded, then again
    created = http.post(local_stack.url("/releases"), json=body, headers=admin, timeout=30)
    again = http.post(local_stack.url("/releases"), json=body, headers=admin, timeout=30)

    # THEN its repository has a new version listing it, at the Location given
    assert created.status_code == HTTPStatus.CREATED, created.text
    assert created.headers["Location"] == f"/releases/{release_id}"
    assert again.status_code == HTTPStatus.OK
    version = created.json()["versions"][repo]
    assert int(version) > int(before["version"])
    index = http.get(local_stack.url(f"/repos/{repo}/releases/index?version={version}"), timeout=30)
    assert index.json() == {"release_ids": [release_id]}
    assert http.get(local_stack.url(created.headers["Location"]), timeout=30).json() == body


def test_a_draft_stays_unlisted_until_published(local_stack, http, make_key):
    admin = {"X-Api-Key": make_key(scope=auth.SCOPE_ADMIN)[0]}
    repo = new_repo()
    draft = {"id": f"r-{repo}", "repo": repo, "published_at": None, "name": "v2-rc"}
    url = local_stack.url("/releases")
    assert http.post(url, json=draft, headers=admin, timeout=30).status_code == HTTPStatus.CREATED
    current = local_stack.url(f"/repos/{repo}/releases/index")
    assert http.get(current, timeout=30).json() == {"release_ids": []}

    published = {**draft, "published_at": "2030-02-01T00:00:00Z", "name": "v2"}
    assert http.post(url, json=published, headers=admin, timeout=30).status_code == HTTPStatus.OK
    assert http.get(current, timeout=30).json() == {"release_ids": [draft["id"]]}
    changed = http.post(url, json={**published, "name": "v3"}, headers=admin, timeout=30)
    assert changed.status_code == HTTPStatus.CONFLICT
    assert changed.headers["Content-Type"] == "application/problem+json"


def test_a_long_list_pages_and_invalidation_moves_the_pointer(local_stack, http, make_key):
    # GIVEN a repository with one release more than a page (seeded as members)
    repo = new_repo()
    CollectionStore.for_settings(get_settings()).add(
        (RELEASES.of(repo), Entry(f"r-{n:05d}", f"2029-01-01T00:00:00.{n:06d}Z"))
        for n in range(PAGE_SIZE + 1)
    )

    # WHEN its collection is invalidated
    admin = {"X-Api-Key": make_key(scope=auth.SCOPE_ADMIN)[0]}
    moved = http.post(
        local_stack.url("/invalidations"),
        json={"collection": f"repos/{repo}/releases"},
        headers=admin,
        timeout=60,
    )

    # THEN the new version lists them a page at a time under the repository's path
    assert moved.status_code == HTTPStatus.ACCEPTED, moved.text
    version = moved.json()["version"]
    index = http.get(local_stack.url(f"/repos/{repo}/releases/index?version={version}"), timeout=30)
    assert index.json()["release_ids"] == [f"r-{PAGE_SIZE:05d}"]
    page_url = local_stack.url(index.json()["next"])
    assert index.json()["next"].startswith(f"/repos/{repo}/releases/pages/")
    page = http.get(page_url, timeout=30)
    revalidate(http, page_url, assert_cacheable(page, HTTPStatus.OK, IMMUTABLE), IMMUTABLE)
    assert len(page.json()["release_ids"]) == PAGE_SIZE and "next" not in page.json()


def test_an_unknown_collection_is_a_404_problem(local_stack, http):
    for path in ("/repos/offload/matches/version", "/teams/7/members/index", "/members/m-1"):
        response = http.get(local_stack.url(path), timeout=30)
        assert response.status_code == HTTPStatus.NOT_FOUND, path
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.headers["Cache-Control"] == "no-store"
    posted = http.post(local_stack.url("/members"), json={}, timeout=30)
    assert posted.status_code == HTTPStatus.NOT_FOUND
    assert posted.headers["Content-Type"] == "application/problem+json"
