"""A second collection, declared in the demo package: a repository's releases, through the
collections handler on the same generic routes as matches (moto in-process)."""

from __future__ import annotations

import hashlib
import json
from http import HTTPStatus

import pytest

from bench.calls import Recorder
from offload.collections import Collection, CollectionRegistry
from offload.collections.store import PAGE_SIZE, CollectionStore, Entry
from offload.config import get_settings
from offload.runtime import Runtime
from offload_demo.releases import RELEASES
from offload_demo.seed import DEMO_REPOS, DRAFT_RELEASE, seed_releases
from tests.support import ROOT, Api, plugins, problem_of

POINTER = "public, max-age=5, stale-while-revalidate=30"
IMMUTABLE = "public, max-age=31536000, immutable"
REDIRECT = "public, max-age=5"
UNFINISHED = "public, max-age=10"


def release(release_id: str, repo: str, published_at: str | None = "2026-11-21T18:04:00Z", **extra):
    return {"id": release_id, "repo": repo, "published_at": published_at, **extra}


def version(api: Api, repo: str, headers: dict | None = None) -> dict:
    return api.get("collection_version", f"/repos/{repo}/releases/version", "", headers)


def index(api: Api, repo: str, at: str | None = None, headers: dict | None = None) -> dict:
    query = "" if at is None else f"version={at}"
    return api.get("collection_index", f"/repos/{repo}/releases/index", query, headers)


def entity(api: Api, release_id: str, headers: dict | None = None) -> dict:
    return api.get("match_request", f"/releases/{release_id}", "", headers)


def record(api: Api, body: object, **kwargs) -> dict:
    return api.record(body, path="/releases", **kwargs)


def current(api: Api, repo: str) -> str:
    response = version(api, repo)
    assert response["statusCode"] == HTTPStatus.OK, response["body"]
    return json.loads(response["body"])["version"]


def listed(api: Api, repo: str) -> list[str]:
    response = index(api, repo, current(api, repo))
    assert response["statusCode"] == HTTPStatus.OK, response["body"]
    return json.loads(response["body"])["release_ids"]


def assert_cacheable(response: dict, status: HTTPStatus, cache_control: str) -> str:
    """Status and Cache-Control as for matches, a strong ETag of the body, never Vary."""
    headers = response["headers"]
    assert response["statusCode"] == status, response["body"]
    assert headers["Cache-Control"] == cache_control
    assert "vary" not in {name.lower() for name in headers}
    etag = headers["ETag"]
    if status == HTTPStatus.NOT_MODIFIED:
        assert not response["body"]
    else:
        assert etag == f'"{hashlib.sha256(response["body"].encode()).hexdigest()}"'
    return etag


def test_releases_is_declared_not_coded():
    # The demo's declaration is all there is: a single owner by field, ordered by a time
    registry = plugins().collections
    assert registry.named("releases") is RELEASES
    assert registry.owned("repos", "releases") is RELEASES
    assert (RELEASES.owner_field, RELEASES.order_field, RELEASES.parse) == (
        "repo",
        "published_at",
        None,
    )
    assert RELEASES.ids_field == "release_ids"
    assert RELEASES.of("offload").path == "repos/offload/releases"


def test_the_documented_declaration_is_the_demos():
    # docs/collections.md shows the declaration; it must be the code that runs
    page = (ROOT / "docs" / "collections.md").read_text()
    shown = page.split("```python\n", 1)[1].split("```", 1)[0]
    assert shown in (ROOT / "examples/demo/offload_demo/releases.py").read_text()


def test_pointer_redirect_snapshot_and_304s(api):
    # GIVEN two published releases of a repository, recorded out of order
    assert record(api, release("r-2", "offload", "2026-11-22T09:00:00Z"))["statusCode"] == 201
    assert record(api, release("r-1", "offload", "2026-11-21T18:04:00Z"))["statusCode"] == 201

    # THEN the pointer is short-lived and revalidates
    pointer = version(api, "offload")
    etag = assert_cacheable(pointer, HTTPStatus.OK, POINTER)
    assert_cacheable(
        version(api, "offload", {"if-none-match": etag}), HTTPStatus.NOT_MODIFIED, POINTER
    )
    at = json.loads(pointer["body"])["version"]

    # AND the unversioned index redirects to it; the snapshot is immutable, newest first
    redirect = index(api, "offload")
    etag = assert_cacheable(redirect, HTTPStatus.TEMPORARY_REDIRECT, REDIRECT)
    assert redirect["headers"]["Location"] == f"/repos/offload/releases/index?version={at}"
    again = index(api, "offload", headers={"if-none-match": etag})
    assert_cacheable(again, HTTPStatus.NOT_MODIFIED, REDIRECT)
    snapshot = index(api, "offload", at)
    etag = assert_cacheable(snapshot, HTTPStatus.OK, IMMUTABLE)
    assert json.loads(snapshot["body"]) == {"release_ids": ["r-2", "r-1"]}
    again = index(api, "offload", at, {"if-none-match": etag})
    assert_cacheable(again, HTTPStatus.NOT_MODIFIED, IMMUTABLE)

    # AND an unknown version is a 404 problem, never cached
    unknown = index(api, "offload", "1")
    assert unknown["statusCode"] == HTTPStatus.NOT_FOUND
    assert unknown["headers"]["Cache-Control"] == "no-store"


def test_recording_is_idempotent_and_lists_for_the_one_repository(api):
    # WHEN a release is recorded, again, and then differently
    body = release("r-10", "offload", name="v1.0", assets=["offload.tar.gz"])
    created = record(api, body)
    again = record(api, body)
    changed = record(api, {**body, "name": "v1.0.1"})

    # THEN it is 201, 200, 409; its version is its repository's alone
    assert created["statusCode"] == HTTPStatus.CREATED
    assert created["headers"]["Location"] == "/releases/r-10"
    recorded = json.loads(created["body"])
    assert recorded["release"] == body and set(recorded["versions"]) == {"offload"}
    assert again["statusCode"] == HTTPStatus.OK
    assert changed["statusCode"] == HTTPStatus.CONFLICT
    problem_of(changed)
    assert listed(api, "offload") == ["r-10"]
    assert listed(api, "edge") == []

    # AND the release reads back as recorded, immutable, and revalidates
    answer = entity(api, "r-10")
    etag = assert_cacheable(answer, HTTPStatus.OK, IMMUTABLE)
    assert json.loads(answer["body"]) == body
    assert_cacheable(
        entity(api, "r-10", {"if-none-match": etag}), HTTPStatus.NOT_MODIFIED, IMMUTABLE
    )


def test_a_draft_is_listed_nowhere_and_may_change_until_published(api):
    # GIVEN a draft release
    before = current(api, "offload")
    draft = release("r-20", "offload", None, name="v2.0-rc")
    assert record(api, draft)["statusCode"] == HTTPStatus.CREATED

    # THEN it is readable but short-lived, in no list, and made no version
    assert_cacheable(entity(api, "r-20"), HTTPStatus.OK, UNFINISHED)
    assert current(api, "offload") == before
    assert listed(api, "offload") == []

    # WHEN it changes, then is published
    assert record(api, {**draft, "name": "v2.0"})["statusCode"] == HTTPStatus.OK
    published = record(api, {**draft, "name": "v2.0", "published_at": "2026-12-01T10:00:00Z"})

    # THEN it is final, immutable and listed in a new version
    assert published["statusCode"] == HTTPStatus.OK
    assert_cacheable(entity(api, "r-20"), HTTPStatus.OK, IMMUTABLE)
    assert int(current(api, "offload")) > int(before)
    assert listed(api, "offload") == ["r-20"]


def test_a_long_list_pages_under_the_releases_path(api):
    # GIVEN a repository with one release more than a page holds (seeded as members)
    store = CollectionStore.for_settings(get_settings())
    store.add(
        (RELEASES.of("big"), Entry(f"r-{n:05d}", f"2029-01-01T00:00:00.{n:06d}Z"))
        for n in range(PAGE_SIZE + 1)
    )
    store.bump(RELEASES.of("big"))

    # THEN the first page links to an immutable page of the older ids, under /repos/big
    first = json.loads(index(api, "big", current(api, "big"))["body"])
    assert first["release_ids"] == [f"r-{PAGE_SIZE:05d}"]
    assert first["next"].startswith("/repos/big/releases/pages/")
    page = api.page(first["next"])
    etag = assert_cacheable(page, HTTPStatus.OK, IMMUTABLE)
    older = json.loads(page["body"])
    assert older == {"release_ids": [f"r-{n:05d}" for n in reversed(range(PAGE_SIZE))]}
    assert_cacheable(
        api.page(first["next"], {"if-none-match": etag}), HTTPStatus.NOT_MODIFIED, IMMUTABLE
    )


def test_invalidating_a_releases_collection_moves_its_pointer(api, invalidate):
    # GIVEN a repository with a version
    assert record(api, release("r-30", "offload"))["statusCode"] == HTTPStatus.CREATED
    before = current(api, "offload")

    # WHEN its collection is invalidated
    response = invalidate({"collection": "repos/offload/releases"})

    # THEN the answer names the new version, which the pointer now is, listing the same ids
    assert response["statusCode"] == HTTPStatus.ACCEPTED, response["body"]
    moved = json.loads(response["body"])
    assert moved["invalidated"] == {"collection": "repos/offload/releases"}
    assert int(moved["version"]) > int(before) and current(api, "offload") == moved["version"]
    assert listed(api, "offload") == ["r-30"]


@pytest.mark.parametrize(
    "body",
    [
        {"repo": "offload", "published_at": None},
        {"id": "r-1", "published_at": None},
        {"id": "r-1", "repo": "offload"},
        release("r-1", ["offload"]),
        release("r-1", "off/load"),
        release("r-1", 42),
        release("r 1", "offload"),
        release("r-1", "offload", "yesterday"),
        release("r-1", "offload", "2026-11-21T18:04:00+02:00"),
    ],
)
def test_bad_release_bodies_are_400(api, body):
    response = record(api, body)
    assert response["statusCode"] == HTTPStatus.BAD_REQUEST, response["body"]
    problem_of(response)


def test_recording_a_release_needs_the_admin_scope(api, make_key):
    assert record(api, release("r-1", "offload"), key=None)["statusCode"] == HTTPStatus.UNAUTHORIZED
    feeds_key, _ = make_key()
    assert (
        record(api, release("r-1", "offload"), key=feeds_key)["statusCode"] == HTTPStatus.FORBIDDEN
    )


UNKNOWN = [
    ("collection_version", "/repos/offload/matches/version", ""),
    ("collection_version", "/users/42/releases/version", ""),
    ("collection_index", "/teams/7/members/index", "version=1"),
    ("collection_page", "/teams/7/members/pages/" + "0" * 64, ""),
    ("match_request", "/members/m-1", ""),
    ("match_request", "/users/42", ""),
]


@pytest.fixture
def recorder(runtime: Runtime) -> Recorder:
    recorder = Recorder()
    recorder.watch(runtime.dynamodb)
    recorder.watch_pynamodb()
    return recorder


@pytest.mark.parametrize(("route", "path", "query"), UNKNOWN)
def test_an_unknown_collection_is_a_404_problem_without_any_aws_call(
    api, recorder, route, path, query
):
    # GIVEN a warm container whose calls are watched (a known collection's read makes some)
    with recorder.recording() as known:
        assert current(api, "offload")
    assert known.calls

    # WHEN a route names a collection the deployment does not serve
    with recorder.recording() as unknown:
        response = api.get(route, path, query)

    # THEN it is a 404 problem, never cached, answered without a single AWS call
    assert response["statusCode"] == HTTPStatus.NOT_FOUND
    assert response["headers"]["Cache-Control"] == "no-store"
    assert problem_of(response)["status"] == HTTPStatus.NOT_FOUND
    assert unknown.calls == []


def test_recording_into_an_unknown_collection_is_a_404_before_the_key_is_read(api, recorder):
    with recorder.recording() as calls:
        response = api.record(release("r-1", "offload"), path="/members")
    assert response["statusCode"] == HTTPStatus.NOT_FOUND
    problem_of(response)
    assert calls.calls == []


def test_a_declaration_names_one_owner_field_and_an_order():
    with pytest.raises(ValueError, match="owner_field"):
        Collection(name="x", owner="y", entity="z", order_field="at")
    with pytest.raises(ValueError, match="owner_field"):
        Collection(
            name="x", owner="y", entity="z", order_field="at", owner_field="a", owners_field="b"
        )
    with pytest.raises(ValueError, match="owner_field"):
        Collection(name="x", owner="y", entity="z", owner_field="a")


def test_two_collections_cannot_share_an_entity_route():
    registry = CollectionRegistry()
    registry.register(RELEASES)
    twin = Collection(
        name="releases", owner="teams", entity="release", owner_field="team", order_field="at"
    )
    with pytest.raises(ValueError, match="already registered"):
        registry.register(twin)


def test_seeded_demo_releases_are_listed_and_the_draft_is_not(api):
    # WHEN the demo releases are seeded (twice: it is idempotent)
    versions = seed_releases(get_settings())
    assert seed_releases(get_settings()) == versions

    # THEN each demo repository lists its published releases, newest first, the draft nowhere
    assert set(versions) == set(DEMO_REPOS)
    for repo in DEMO_REPOS:
        ids = listed(api, repo)
        assert len(ids) == 4 and ids == sorted(ids, reverse=True)
        assert DRAFT_RELEASE not in ids
    assert_cacheable(entity(api, DRAFT_RELEASE), HTTPStatus.OK, UNFINISHED)


def test_the_release_record_event_invokes_the_handler(handler, load_event, demo_keys):
    # events/release_record.json, as `sam local invoke CollectionsFunction -e` sends it
    response = handler("CollectionsFunction")(load_event("release_record"))
    assert response["statusCode"] == HTTPStatus.CREATED, response["body"]
    assert response["headers"]["Location"] == "/releases/r-2001"
