"""Collections through the handler: pointer, snapshots, matches, recording, invalidation."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from itertools import pairwise
from typing import Any

import pytest

from offload.collections import store as collection_store
from offload.collections.plugin import next_version
from offload.collections.store import CollectionStore, Entry
from offload.collections.table import CollectionPointer, Page, Snapshot
from offload.config import get_settings
from offload.errors import DependencyUnavailable
from offload_demo.matches import MATCHES
from tests.support import match, problem_of

POINTER = "public, max-age=5, stale-while-revalidate=30"
IMMUTABLE = "public, max-age=31536000, immutable"
REDIRECT = "public, max-age=5"
UNFINISHED = "public, max-age=10"


def assert_cacheable(response: dict, status: HTTPStatus, cache_control: str) -> str:
    """Status and Cache-Control as the design table says, a strong ETag, never Vary."""
    headers = response["headers"]
    assert response["statusCode"] == status
    assert headers["Cache-Control"] == cache_control
    assert not {name.lower() for name in headers} & {"vary"}
    assert "vary" not in {name.lower() for name in response.get("multiValueHeaders") or {}}
    etag = headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    if status == HTTPStatus.NOT_MODIFIED:
        assert not response["body"]
    else:
        assert etag == f'"{hashlib.sha256(response["body"].encode()).hexdigest()}"'
    return etag


def snapshot_items(user: str) -> list[Snapshot]:
    return list(
        Snapshot.query(
            f"COLLECTION#users/{user}/matches",
            Snapshot.sk.startswith("SNAPSHOT#"),
            filter_condition=Snapshot.version.exists(),
        )
    )


# --- GET /users/{user_id}/matches/version ------------------------------------------------


def test_first_version_read_creates_the_pointer_with_short_cache(api):
    # WHEN a user's version is read for the first time
    first = api.version("42")
    # THEN a pointer is created and answered with the pointer's Cache-Control and an ETag
    etag = assert_cacheable(first, HTTPStatus.OK, POINTER)
    assert first["headers"]["Content-Type"] == "application/json"
    version = json.loads(first["body"])["version"]
    assert version.isdigit()
    # AND later reads answer the same version, byte for byte
    again = api.version("42")
    assert again["body"] == first["body"] and again["headers"]["ETag"] == etag
    assert CollectionPointer.get("COLLECTION#users/42/matches", "POINTER").version == version


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", '"nope", {etag}', "W/{etag}", "*", ' "other" ,{etag} '],
)
def test_version_revalidation_answers_304_with_same_headers(api, if_none_match):
    etag = assert_cacheable(api.version("42"), HTTPStatus.OK, POINTER)
    response = api.version("42", headers={"if-none-match": if_none_match.format(etag=etag)})
    assert assert_cacheable(response, HTTPStatus.NOT_MODIFIED, POINTER) == etag


def test_version_with_other_etag_answers_the_body(api):
    response = api.version("42", headers={"if-none-match": '"stale"'})
    assert_cacheable(response, HTTPStatus.OK, POINTER)


# --- GET /users/{user_id}/matches/index --------------------------------------------------


def test_index_without_version_redirects_to_the_current_version(api):
    version = api.current("42")
    response = api.index("42")
    etag = assert_cacheable(response, HTTPStatus.TEMPORARY_REDIRECT, REDIRECT)
    assert response["headers"]["Location"] == f"/users/42/matches/index?version={version}"
    revalidated = api.index("42", headers={"if-none-match": etag})
    assert assert_cacheable(revalidated, HTTPStatus.NOT_MODIFIED, REDIRECT) == etag


def test_redirect_etag_changes_when_the_version_moves(api):
    before = api.index("42")["headers"]["ETag"]
    assert api.record(match("m-1", "42"))["statusCode"] == HTTPStatus.CREATED
    after = api.index("42", headers={"if-none-match": before})
    assert_cacheable(after, HTTPStatus.TEMPORARY_REDIRECT, REDIRECT)
    assert after["headers"]["ETag"] != before


def test_index_of_a_version_is_immutable_and_revalidates(api):
    version = api.current("42")
    response = api.index("42", version)
    etag = assert_cacheable(response, HTTPStatus.OK, IMMUTABLE)
    assert response["headers"]["Content-Type"] == "application/json"
    assert json.loads(response["body"]) == {"match_ids": []}
    for if_none_match in (etag, f'"x", {etag}', "*"):
        revalidated = api.index("42", version, headers={"if-none-match": if_none_match})
        assert assert_cacheable(revalidated, HTTPStatus.NOT_MODIFIED, IMMUTABLE) == etag


@pytest.mark.parametrize("version", ["1795381200000", "0", "abc", "", "1" * 30, "12,13", "-5"])
def test_unknown_or_malformed_version_is_404_no_store(api, version):
    api.current("42")
    response = api.index("42", version)
    assert response["statusCode"] == HTTPStatus.NOT_FOUND
    assert response["headers"]["Cache-Control"] == "no-store"
    assert "ETag" not in response["headers"]
    assert problem_of(response)["status"] == HTTPStatus.NOT_FOUND


# --- recording matches -------------------------------------------------------------------


def test_recording_a_match_moves_each_players_pointer_and_keeps_old_snapshots(api):
    # GIVEN two players with a first match each, and their index as a CDN cached it
    api.record(match("m-1", "42", finished_at="2026-11-20T10:00:00Z"))
    old_version = api.current("42")
    old_index = api.index("42", old_version)
    old_17 = api.current("17")
    # WHEN a match between them is recorded
    response = api.record(match("m-2", "42", "17", winner="42", score=[3, 1]))
    # THEN it is stored (201) and each player has a new version that lists it first
    assert response["statusCode"] == HTTPStatus.CREATED
    assert response["headers"]["Location"] == "/matches/m-2"
    assert response["headers"]["Cache-Control"] == "no-store"
    versions = json.loads(response["body"])["versions"]
    assert set(versions) == {"42", "17"}
    assert int(versions["42"]) > int(old_version) and int(versions["17"]) > int(old_17)
    assert api.current("42") == versions["42"] and api.current("17") == versions["17"]
    assert api.ids("42", versions["42"]) == ["m-2", "m-1"]
    assert api.ids("17", versions["17"]) == ["m-2"]
    # AND the old version still answers the old list, byte for byte
    again = api.index("42", old_version)
    assert again["body"] == old_index["body"] == '{"match_ids":["m-1"]}'
    assert again["headers"]["ETag"] == old_index["headers"]["ETag"]


def test_index_lists_newest_finish_first_whatever_the_recording_order(api):
    api.record(match("m-b", "42", finished_at="2026-11-21T12:00:00Z"))
    api.record(match("m-c", "42", finished_at="2026-11-22T12:00:00+00:00"))
    response = api.record(match("m-a", "42", finished_at="2026-11-20T12:00:00.5Z"))
    version = json.loads(response["body"])["versions"]["42"]
    assert api.ids("42", version) == ["m-c", "m-b", "m-a"]


def test_match_entity_is_immutable_once_final_and_keeps_further_fields(api):
    api.record(match("m-1", "42", "17", winner="17", score=[1, 3], map="harbour"))
    response = api.match("m-1")
    etag = assert_cacheable(response, HTTPStatus.OK, IMMUTABLE)
    assert json.loads(response["body"]) == match(
        "m-1", "42", "17", winner="17", score=[1, 3], map="harbour"
    )
    revalidated = api.match("m-1", headers={"if-none-match": etag})
    assert assert_cacheable(revalidated, HTTPStatus.NOT_MODIFIED, IMMUTABLE) == etag


def test_same_body_again_is_200_and_makes_no_new_version(api):
    first = api.record(match("m-1", "42", "17", map="harbour"))
    before = {user: api.current(user) for user in ("42", "17")}
    # the same JSON value with its keys in another order is the same body
    reordered = json.dumps(dict(reversed(list(match("m-1", "42", "17", map="harbour").items()))))
    second = api.record(reordered)
    assert second["statusCode"] == HTTPStatus.OK
    assert json.loads(second["body"])["match"] == json.loads(first["body"])["match"]
    assert json.loads(second["body"])["versions"] == before
    assert {user: api.current(user) for user in ("42", "17")} == before


def test_different_body_under_the_same_id_is_409(api):
    api.record(match("m-1", "42", "17"))
    before = api.current("42")
    response = api.record(match("m-1", "42", "17", winner="17"))
    assert response["statusCode"] == HTTPStatus.CONFLICT
    assert problem_of(response)["status"] == HTTPStatus.CONFLICT
    assert api.current("42") == before
    assert "winner" not in json.loads(api.match("m-1")["body"])


def test_repost_completes_a_version_bump_a_crash_skipped(api, monkeypatch):
    # GIVEN a recording that died after player 42's version but before player 17's
    api.current("17")
    bump = CollectionStore.bump

    def crash_for_17(self, ref, **kwargs):
        if ref.owner_id == "17":
            raise DependencyUnavailable("the function died here")
        return bump(self, ref, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(CollectionStore, "bump", crash_for_17)
        failed = api.record(match("m-1", "42", "17"))
    assert failed["statusCode"] == HTTPStatus.SERVICE_UNAVAILABLE
    version_42 = api.current("42")
    assert api.ids("42", version_42) == ["m-1"]
    assert api.ids("17", api.current("17")) == []
    # WHEN the same body is posted again
    retried = api.record(match("m-1", "42", "17"))
    # THEN 17 gets the version it missed, 42 keeps its own, and nothing is listed twice
    assert retried["statusCode"] == HTTPStatus.OK
    versions = json.loads(retried["body"])["versions"]
    assert versions["42"] == version_42
    assert api.ids("17", versions["17"]) == ["m-1"]
    assert api.ids("42", api.current("42")) == ["m-1"]


def test_repost_completes_a_recording_that_died_before_listing(api, monkeypatch):
    with monkeypatch.context() as patched:
        patched.setattr(CollectionStore, "add", _fail)
        failed = api.record(match("m-1", "42", "17"))
    assert failed["statusCode"] == HTTPStatus.SERVICE_UNAVAILABLE
    assert api.match("m-1")["statusCode"] == HTTPStatus.OK
    retried = api.record(match("m-1", "42", "17"))
    assert retried["statusCode"] == HTTPStatus.OK
    for user, version in json.loads(retried["body"])["versions"].items():
        assert api.ids(user, version) == ["m-1"]


def _fail(*args: Any, **kwargs: Any) -> None:
    raise DependencyUnavailable("the function died here")


def test_unfinished_match_is_short_lived_unlisted_and_can_be_finished(api):
    # GIVEN a match still being played
    live = api.record(match("m-1", "42", "17", finished_at=None, score=[1, 0]))
    assert live["statusCode"] == HTTPStatus.CREATED
    assert json.loads(live["body"])["versions"] == {}
    assert_cacheable(api.match("m-1"), HTTPStatus.OK, UNFINISHED)
    assert api.ids("42", api.current("42")) == []
    # WHEN it finishes
    done = api.record(match("m-1", "42", "17", score=[3, 0]))
    # THEN it is final, immutable and listed for both players
    assert done["statusCode"] == HTTPStatus.OK
    for user, version in json.loads(done["body"])["versions"].items():
        assert api.ids(user, version) == ["m-1"]
    assert_cacheable(api.match("m-1"), HTTPStatus.OK, IMMUTABLE)
    assert api.record(match("m-1", "42", "17", score=[3, 2]))["statusCode"] == HTTPStatus.CONFLICT


def test_recording_needs_the_admin_scope(api, make_key):
    assert api.record(match("m-1", "42"), key=None)["statusCode"] == HTTPStatus.UNAUTHORIZED
    feeds_key, _ = make_key()
    response = api.record(match("m-1", "42"), key=feeds_key)
    assert response["statusCode"] == HTTPStatus.FORBIDDEN
    assert api.match("m-1")["statusCode"] == HTTPStatus.NOT_FOUND


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        {"players": ["42"], "finished_at": "2026-11-21T18:04:00Z"},
        {"id": "m-1", "finished_at": "2026-11-21T18:04:00Z"},
        {"id": "m-1", "players": ["42"]},
        match("../etc", "42"),
        match("m 1", "42"),
        match("m-" + "1" * 70, "42"),
        {"id": 1001, "players": ["42"], "finished_at": "2026-11-21T18:04:00Z"},
        match("m-1"),
        {"id": "m-1", "players": "42", "finished_at": "2026-11-21T18:04:00Z"},
        {"id": "m-1", "players": [42], "finished_at": "2026-11-21T18:04:00Z"},
        match("m-1", "42", "4/2"),
        match("m-1", "42", "42"),
        match("m-1", *[f"u{n}" for n in range(101)]),
        match("m-1", "42", finished_at="yesterday"),
        match("m-1", "42", finished_at="2026-11-21T18:04:00"),
        match("m-1", "42", finished_at="2026-11-21T18:04:00+02:00"),
        match("m-1", "42", finished_at="2026-13-01T00:00:00Z"),
        {"id": "m-1", "players": ["42"], "finished_at": 1795381200},
        '{"id": "m-1", "players": ["42"], "finished_at": null, "x": NaN}',
    ],
)
def test_bad_match_bodies_are_400(api, body):
    response = api.record(body)
    assert response["statusCode"] == HTTPStatus.BAD_REQUEST, response["body"]
    problem_of(response)


def test_oversized_and_non_json_bodies(api):
    huge = api.record(match("m-1", "42", notes="x" * 70_000))
    assert huge["statusCode"] == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    problem_of(huge)
    text = api.record(match("m-1", "42"), headers={"content-type": "text/plain"})
    assert text["statusCode"] == HTTPStatus.UNSUPPORTED_MEDIA_TYPE


@pytest.mark.parametrize(
    ("route", "path", "query"),
    [
        ("collection_version", "/users/a.b/matches/version", ""),
        ("collection_version", "/users/" + "9" * 65 + "/matches/version", ""),
        ("collection_version", "/users/42/matches/version", "key=abc"),
        ("collection_index", "/users/%2e%2e/matches/index", ""),
        ("collection_index", "/users/42/matches/index", "version=1&junk=1"),
        ("match_request", "/matches/..", ""),
        ("match_request", "/matches/m!1", ""),
        ("match_request", "/matches/m-1", "cachebust=1"),
    ],
)
def test_bad_ids_and_parameters_are_400_never_5xx(api, route, path, query):
    response = api.get(route, path, query)
    assert response["statusCode"] in {HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND}
    assert problem_of(response)["status"] == response["statusCode"]
    assert response["headers"]["Cache-Control"] == "no-store"


def test_unknown_match_is_404_no_store(api):
    response = api.match("m-404")
    assert response["statusCode"] == HTTPStatus.NOT_FOUND
    assert response["headers"]["Cache-Control"] == "no-store"
    problem_of(response)


# --- POST /invalidations {"collection": ...} ---------------------------------------------


def test_collection_invalidation_moves_the_pointer_with_a_fresh_snapshot(api, invalidate):
    api.record(match("m-1", "42"))
    before = api.current("42")
    old_index = api.index("42", before)
    response = invalidate({"collection": "users/42/matches"})
    assert response["statusCode"] == HTTPStatus.ACCEPTED
    body = json.loads(response["body"])
    assert body["invalidated"] == {"collection": "users/42/matches"}
    assert int(body["version"]) > int(before)
    assert api.current("42") == body["version"]
    assert api.ids("42", body["version"]) == ["m-1"]
    assert api.index("42", before)["body"] == old_index["body"]


def test_collection_invalidation_creates_a_missing_pointer(api, invalidate):
    response = invalidate({"collection": "users/7/matches"})
    assert response["statusCode"] == HTTPStatus.ACCEPTED
    assert api.current("7") == json.loads(response["body"])["version"]


@pytest.mark.parametrize(
    "body",
    [
        {"collection": "users/42"},
        {"collection": "users/42/matches/extra"},
        {"collection": "users/../matches"},
        {"collection": "users//matches"},
        {"collection": "teams/1/matches"},
        {"collection": "users/42/trophies"},
        {"collection": 42},
        {"collection": None},
        {"collection": "users/42/matches", "soft": True},
        {"collection": "users/42/matches", "feed": "catalog"},
    ],
)
def test_malformed_collection_invalidation_is_400(invalidate, body):
    response = invalidate(body)
    assert response["statusCode"] == HTTPStatus.BAD_REQUEST
    problem_of(response)


# --- races, clocks and sizes -------------------------------------------------------------


def test_concurrent_first_reads_agree_on_one_version_and_one_snapshot(containers, load_event):
    event = load_event("collection_version")
    pool = containers("CollectionsFunction")
    with ThreadPoolExecutor(max_workers=30) as executor:
        responses = list(executor.map(lambda _: pool.invoke(event), range(30)))
    assert {response["statusCode"] for response in responses} == {HTTPStatus.OK}
    assert len({response["body"] for response in responses}) == 1
    assert len({response["headers"]["ETag"] for response in responses}) == 1
    [snapshot] = snapshot_items("42")
    assert json.loads(responses[0]["body"])["version"] == snapshot.version


def test_concurrent_recordings_share_increasing_versions_and_lose_nothing(
    api, containers, load_event
):
    # GIVEN 20 matches of user 42, each against someone else, posted at once
    events = []
    for number in range(20):
        event = load_event("match_record")
        event["headers"]["x-api-key"] = api.admin_key
        finished_at = f"2026-11-21T18:{number:02d}:00Z"
        event["body"] = json.dumps(
            match(f"m-{number}", "42", f"u{number}", finished_at=finished_at)
        )
        events.append(event)
    pool = containers("CollectionsFunction")
    with ThreadPoolExecutor(max_workers=20) as executor:
        responses = list(executor.map(pool.invoke, events))
    # THEN every recording answered a version of 42's list that lists its match: its own,
    # or a concurrent recording's that took it in (so they need not queue for one each)
    assert [response["statusCode"] for response in responses] == [HTTPStatus.CREATED] * 20
    versions = [json.loads(response["body"])["versions"]["42"] for response in responses]
    ordered = sorted(set(versions), key=int)
    assert api.current("42") == ordered[-1]
    # AND each version's snapshot exists and lists its own match; none forgets an earlier one
    for number, version in enumerate(versions):
        assert f"m-{number}" in api.ids("42", version)
    listed = [set(api.ids("42", version)) for version in ordered]
    assert all(earlier <= later for earlier, later in pairwise(listed))
    # AND the last one holds all 20, newest finish first
    assert api.ids("42", ordered[-1]) == [f"m-{number}" for number in reversed(range(20))]
    # AND every snapshot written is a version some recording answered
    assert len(snapshot_items("42")) == len(ordered)


def test_versions_increase_even_when_the_clock_goes_backwards(aws):
    times = iter([2000.0, 1000.0, 1000.0, 5.0])
    store = CollectionStore.for_settings(get_settings())
    store._clock = lambda: next(times)
    ref = MATCHES.of("42")
    versions = [store.version(ref), store.bump(ref), store.bump(ref), store.bump(ref)]
    assert versions == ["2000000", "2000001", "2000002", "2000003"]
    assert next_version(None, 1795381200.123) == "1795381200123"
    assert next_version("1795381200123", 1795381200.0) == "1795381200124"


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> int:
    """Pages of 10 ids for stores made from here on: a long list's shape at a tenth the ids."""
    monkeypatch.setattr(collection_store, "PAGE_SIZE", SMALL_PAGE)
    return SMALL_PAGE


SMALL_PAGE = 10


def test_large_collection_reads_page_by_page_untruncated(small_pages, api, invalidate):
    # GIVEN a user with 40 pages of matches (bench/collection_writes.py runs 50,000 of them
    # at the real page size; the invariant is the number of pages, not of ids)
    ids = [f"m-{number:06d}" for number in range(40 * small_pages)]
    store = CollectionStore.for_settings(get_settings())
    ref = MATCHES.of("big")
    store.add(
        (ref, Entry(match_id, f"2026-01-01T00:00:00.{number:06d}Z"))
        for number, match_id in enumerate(ids)
    )
    # WHEN a version is created and its first page read
    version = json.loads(invalidate({"collection": "users/big/matches"})["body"])["version"]
    first = api.index("big", version)
    # THEN it is immutable, holds the newest ids and links to the next page
    etag = assert_cacheable(first, HTTPStatus.OK, IMMUTABLE)
    document = json.loads(first["body"])
    assert document["match_ids"] == ids[: -small_pages - 1 : -1]
    assert document["next"].startswith("/users/big/matches/pages/")
    revalidated = api.index("big", version, headers={"if-none-match": etag})
    assert_cacheable(revalidated, HTTPStatus.NOT_MODIFIED, IMMUTABLE)
    # AND following the links gives every id once, newest first, a page at a time
    assert api.ids("big", version) == ids[::-1]
    pages = list(Page.query(ref.partition, Page.sk.startswith("PAGE#")))
    assert len(pages) == len(ids) // small_pages - 1
    assert all(len(page.ids) == small_pages for page in pages)


# --- events/ and the demo data -----------------------------------------------------------


def test_seed_demo_gives_users_listed_matches(api):
    from offload_demo.seed import DEMO_USERS, LIVE_MATCH, seed_matches

    versions = seed_matches(get_settings())
    assert set(versions) == set(DEMO_USERS)
    for user, version in versions.items():
        assert api.current(user) == version
        assert len(api.ids(user, version)) >= 3
    assert_cacheable(api.match(LIVE_MATCH), HTTPStatus.OK, UNFINISHED)
    assert seed_matches(get_settings()) == versions  # seeding again changes nothing


@pytest.mark.parametrize(
    ("name", "function", "status"),
    [
        ("collection_version", "CollectionsFunction", HTTPStatus.OK),
        ("collection_index", "CollectionsFunction", HTTPStatus.TEMPORARY_REDIRECT),
        ("collection_index_version", "CollectionsFunction", HTTPStatus.NOT_FOUND),
        ("collection_page", "CollectionsFunction", HTTPStatus.NOT_FOUND),
        ("match_request", "CollectionsFunction", HTTPStatus.OK),
        ("match_record", "CollectionsFunction", HTTPStatus.CREATED),
        ("invalidation_collection", "InvalidationsFunction", HTTPStatus.ACCEPTED),
    ],
)
def test_collection_events_invoke_their_handler(
    handler, load_event, demo_keys, name, function, status
):
    from offload_demo.seed import seed_matches

    seed_matches(get_settings())
    response = handler(function)(load_event(name))
    assert response["statusCode"] == status, response["body"]
