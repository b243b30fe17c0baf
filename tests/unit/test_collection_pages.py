"""Long lists a page at a time: the first page per version, shared full pages, expiry.

Pages hold 3 ids here (the deployment's PAGE_SIZE is 100), so a few recordings cross
many page boundaries; the rules are the same.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from itertools import pairwise

import pytest

from offload.collections import store as store_module
from offload.collections.store import CollectionStore, Entry
from offload.collections.table import CollectionPointer, Page, Snapshot, SnapshotChunk
from offload.config import get_settings
from offload_demo.matches import MATCHES
from tests.support import Api, match, problem_of

SMALL_PAGE = 3
IMMUTABLE = "public, max-age=31536000, immutable"
START = datetime(2026, 11, 21, 18, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of SMALL_PAGE ids; autouse, so set before any fixture loads a handler."""
    monkeypatch.setattr(store_module, "PAGE_SIZE", SMALL_PAGE)


def at(minutes: float) -> str:
    """A finish time `minutes` after START, as a recording sends it."""
    return (START + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def record(api: Api, match_id: str, minutes: float, *others: str) -> str:
    """Record a finished match of user 42 (and others); 42's new version."""
    response = api.record(match(match_id, "42", *others, finished_at=at(minutes)))
    assert response["statusCode"] in {HTTPStatus.CREATED, HTTPStatus.OK}, response["body"]
    return json.loads(response["body"])["versions"]["42"]


def documents(api: Api, user: str, version: str) -> list[tuple[str, dict]]:
    """The version's pages as a client walks them: (URL, answer body), first page first."""
    url = f"/users/{user}/matches/index?version={version}"
    response = api.index(user, version)
    walked = []
    while True:
        assert response["statusCode"] == HTTPStatus.OK, response["body"]
        document = json.loads(response["body"])
        walked.append((url, document))
        if "next" not in document:
            return walked
        url = document["next"]
        response = api.page(url)


def full_pages(api: Api, user: str, version: str) -> list[str]:
    """The URLs of the version's full pages, newest first."""
    return [url for url, _ in documents(api, user, version)[1:]]


def page_items(user: str = "42") -> dict[str, Page]:
    partition = MATCHES.of(user).partition
    return {page.page_id: page for page in Page.query(partition, Page.sk.startswith("PAGE#"))}


def version_items(user: str = "42") -> list[Snapshot]:
    """Every version written, oldest first."""
    items = Snapshot.query(
        MATCHES.of(user).partition,
        Snapshot.sk.startswith("SNAPSHOT#"),
        filter_condition=Snapshot.version.exists(),
    )
    return sorted(items, key=lambda item: int(item.version))


def assert_immutable(response: dict) -> str:
    headers = response["headers"]
    assert response["statusCode"] == HTTPStatus.OK
    assert headers["Cache-Control"] == IMMUTABLE
    assert "vary" not in {name.lower() for name in headers}
    assert headers["ETag"] == f'"{hashlib.sha256(response["body"].encode()).hexdigest()}"'
    return headers["ETag"]


# --- reading a list page by page ------------------------------------------------------------


def test_every_version_lists_each_match_once_newest_first_across_pages(api):
    # GIVEN 14 matches of user 42, recorded one by one in the order they finished
    listed: list[str] = []
    lists: dict[str, list[str]] = {}
    for number in range(14):
        version = record(api, f"m-{number:02d}", number, "17" if number % 4 == 0 else "7")
        listed.insert(0, f"m-{number:02d}")
        lists[version] = list(listed)
        # THEN each new version lists every match once, newest first, across its pages
        assert api.ids("42", version) == listed
    # AND every earlier version still answers the list it had, page for page
    for version, expected in lists.items():
        walked = documents(api, "42", version)
        assert [i for _, document in walked for i in document["match_ids"]] == expected
        # the first page holds what is left over full pages (1 to 3 ids), every other 3
        sizes = [len(document["match_ids"]) for _, document in walked]
        full, left = divmod(len(expected) - 1, SMALL_PAGE)
        assert sizes == [left + 1] + [SMALL_PAGE] * full
    # AND the other players' lists page the same way
    assert api.ids("17", api.current("17")) == ["m-12", "m-08", "m-04", "m-00"]


def test_a_recording_shares_every_full_page_of_the_version_before(api):
    # GIVEN a list long enough for full pages
    versions = [record(api, f"m-{number:02d}", number) for number in range(12)]
    # THEN each version's full pages are the previous version's, plus at most the one
    # its first page filled: a recording rewrites the first page only
    for before, after in pairwise(versions):
        old, new = full_pages(api, "42", before), full_pages(api, "42", after)
        assert new in (old, [*new[:1], *old])
    assert len(page_items()) == (12 - 1) // SMALL_PAGE


def test_a_late_match_takes_its_place_and_the_pages_before_it_stay_shared(api):
    # GIVEN 12 matches, recorded in order, every other minute
    for number in range(12):
        before = record(api, f"m-{2 * number:02d}", 2 * number)
    old_list = api.ids("42", before)
    old_pages = full_pages(api, "42", before)
    # WHEN a match that finished at minute 9 is recorded only now
    after = record(api, "m-09", 9)
    # THEN it is listed in its place, once
    expected = sorted([*old_list, "m-09"], reverse=True)
    assert api.ids("42", after) == expected
    # AND the page of older matches keeps its URL; the pages from its place on are new
    new_pages = full_pages(api, "42", after)
    assert new_pages[-1] == old_pages[-1]
    assert not set(new_pages[:-1]) & set(old_pages)
    # AND the version before still answers its own list
    assert api.ids("42", before) == old_list
    # AND one older than every listed match goes last
    oldest = record(api, "m-first", -5)
    assert api.ids("42", oldest) == [*expected, "m-first"]


def test_recording_the_same_late_match_again_makes_no_new_version(api):
    for number in range(9):
        record(api, f"m-{number:02d}", number + 1)
    late = record(api, "m-late", 2.5)
    assert record(api, "m-late", 2.5) == late
    assert api.current("42") == late
    assert api.ids("42", late).count("m-late") == 1


def test_pages_are_immutable_revalidate_and_belong_to_their_list(api):
    # GIVEN a version with full pages
    for number in range(7):
        version = record(api, f"m-{number}", number)
    url = full_pages(api, "42", version)[0]
    # WHEN a page is read
    response = api.page(url)
    # THEN it is cacheable forever, with a strong ETag that revalidates to 304
    etag = assert_immutable(response)
    assert response["headers"]["Content-Type"] == "application/json"
    for if_none_match in (etag, f'"x", {etag}', "*", f"W/{etag}"):
        revalidated = api.page(url, headers={"if-none-match": if_none_match})
        assert revalidated["statusCode"] == HTTPStatus.NOT_MODIFIED
        assert revalidated["headers"]["ETag"] == etag
        assert revalidated["headers"]["Cache-Control"] == IMMUTABLE
        assert not revalidated["body"]
    # AND the first page links to it, as it links to the next
    assert json.loads(api.index("42", version)["body"])["next"] == url
    assert json.loads(response["body"])["next"].startswith("/users/42/matches/pages/")


@pytest.mark.parametrize(
    "path",
    [
        "/users/42/matches/pages/" + "0" * 64,
        "/users/42/matches/pages/" + "A" * 64,
        "/users/42/matches/pages/abc",
        "/users/42/matches/pages/" + "0" * 65,
    ],
)
def test_unknown_or_malformed_page_is_404_no_store(api, path):
    response = api.page(path)
    assert response["statusCode"] == HTTPStatus.NOT_FOUND
    assert response["headers"]["Cache-Control"] == "no-store"
    assert "ETag" not in response["headers"]
    assert problem_of(response)["status"] == HTTPStatus.NOT_FOUND


def test_a_page_under_another_user_or_with_a_query_is_refused(api):
    for number in range(5):
        version = record(api, f"m-{number}", number)
    url = full_pages(api, "42", version)[0]
    other = api.page(url.replace("/users/42/", "/users/17/"))
    assert other["statusCode"] == HTTPStatus.NOT_FOUND
    junk = api.get("collection_page", url, "cachebust=1")
    assert junk["statusCode"] == HTTPStatus.BAD_REQUEST
    assert junk["headers"]["Cache-Control"] == "no-store"


# --- expiry -----------------------------------------------------------------------------------


def test_superseded_versions_expire_after_the_retention_the_current_never(api):
    # GIVEN a list that crossed page boundaries
    for number in range(8):
        record(api, f"m-{number}", number)
    retention = get_settings().superseded_retention
    versions = version_items()
    # THEN every version but the current one expires, the retention after it was replaced
    *superseded, current = versions
    assert current.version == api.current("42") and current.expires_at is None
    for old, new in pairwise(versions):
        assert old.expires_at is not None
        assert old.expires_at.timestamp() == int(new.created_at) + retention
    # AND, until then, a replaced version still answers its list
    assert all(api.ids("42", old.version) for old in superseded)
    # AND no full page expires: the current version names every one of them
    assert set(page_items()) == {
        url.rsplit("/", 1)[1] for url in full_pages(api, "42", current.version)
    }
    assert all(page.expires_at is None for page in page_items().values())


def test_pages_a_late_match_replaced_expire_with_the_version_that_named_them(api):
    for number in range(10):
        before = record(api, f"m-{2 * number:02d}", 2 * number)
    replaced = {url.rsplit("/", 1)[1] for url in full_pages(api, "42", before)}
    after = record(api, "m-05", 5)
    kept = {url.rsplit("/", 1)[1] for url in full_pages(api, "42", after)}
    pages = page_items()
    [old] = [item for item in version_items() if item.version == before]
    [new] = [item for item in version_items() if item.version == after]
    for name in replaced - kept:
        assert pages[name].expires_at == old.expires_at
        assert (
            old.expires_at.timestamp() == int(new.created_at) + get_settings().superseded_retention
        )
    assert all(pages[name].expires_at is None for name in kept)
    assert replaced & kept and replaced - kept


# --- invalidation, concurrency, versions from before pages -------------------------------------


def test_invalidation_rebuilds_from_the_members_rewriting_only_what_changed(api, invalidate):
    # GIVEN a list with full pages
    for number in range(10):
        record(api, f"m-{number:02d}", number)
    version = api.current("42")
    pages = full_pages(api, "42", version)
    # WHEN the collection is invalidated
    response = invalidate({"collection": "users/42/matches"})
    # THEN there is a new version with the same list and the same pages: none was rewritten
    assert response["statusCode"] == HTTPStatus.ACCEPTED
    moved = json.loads(response["body"])["version"]
    assert int(moved) > int(version)
    assert api.ids("42", moved) == api.ids("42", version)
    assert full_pages(api, "42", moved) == pages
    assert len(page_items()) == len(pages)
    # GIVEN a member whose recording died before its version (no page lists it)
    store = CollectionStore.for_settings(get_settings())
    store.add([(MATCHES.of("42"), Entry("m-04x", "2026-11-21T18:04:30.000000Z"))])
    # WHEN the collection is invalidated again
    fixed = json.loads(invalidate({"collection": "users/42/matches"})["body"])["version"]
    # THEN the member is listed in its place, and the page before it is still shared
    listed = api.ids("42", fixed)
    assert listed == sorted([*api.ids("42", moved), "m-04x"], reverse=True)
    assert full_pages(api, "42", fixed)[-1] == pages[-1]


def test_concurrent_recordings_across_page_boundaries_lose_nothing(api, containers, load_event):
    # GIVEN 20 matches of user 42 posted at once, with pages of 3
    events = []
    for number in range(20):
        event = load_event("match_record")
        event["headers"]["x-api-key"] = api.admin_key
        event["body"] = json.dumps(match(f"m-{number:02d}", "42", finished_at=at(number)))
        events.append(event)
    pool = containers("CollectionsFunction")
    with ThreadPoolExecutor(max_workers=20) as executor:
        responses = list(executor.map(pool.invoke, events))
    assert [response["statusCode"] for response in responses] == [HTTPStatus.CREATED] * 20
    # THEN every version answered lists its own match, once, newest first
    versions = [json.loads(response["body"])["versions"]["42"] for response in responses]
    for number, version in enumerate(versions):
        listed = api.ids("42", version)
        assert f"m-{number:02d}" in listed
        assert listed == sorted(set(listed), reverse=True)
    # AND none forgets what an earlier one listed, and the last lists all 20
    ordered = sorted(set(versions), key=int)
    lists = [set(api.ids("42", version)) for version in ordered]
    assert all(earlier <= later for earlier, later in pairwise(lists))
    assert api.ids("42", api.current("42")) == [f"m-{n:02d}" for n in reversed(range(20))]


@pytest.mark.parametrize("chunked", [False, True], ids=["inline", "chunked"])
def test_a_version_from_before_pages_is_still_served_and_the_next_one_pages(api, chunked):
    # GIVEN user 42's current version as it was written before pages: the whole list in one
    # body, inline or in chunk items
    ids = [f"m-{number:02d}" for number in range(7)]
    ref = MATCHES.of("42")
    CollectionStore.for_settings(get_settings()).add(
        (ref, Entry(match_id, f"2026-11-21T18:{n:02d}:00.000000Z"))
        for n, match_id in enumerate(ids)
    )
    body = json.dumps({"match_ids": ids[::-1]}, separators=(",", ":")).encode()
    legacy = Snapshot(
        ref.partition,
        Snapshot.key_for("1795381200000"),
        version="1795381200000",
        etag=f'"{hashlib.sha256(body).hexdigest()}"',
        size=len(body),
        id_count=len(ids),
        created_at=1795381200.0,
    )
    if chunked:
        legacy.chunk_prefix, legacy.chunks = "SNAPSHOT#1795381200000#abc#", 2
        for index, part in enumerate((body[:40], body[40:])):
            SnapshotChunk(ref.partition, f"{legacy.chunk_prefix}{index:05d}", data=part).save()
    else:
        legacy.body = body
    legacy.save()
    CollectionPointer(ref.partition, "POINTER", version="1795381200000", moved_at=0).save()
    # THEN it answers its list, byte for byte
    response = api.index("42", "1795381200000")
    assert_immutable(response)
    assert response["body"].encode() == body
    # WHEN a match is recorded
    version = record(api, "m-07", 7)
    # THEN the new version pages the whole list, and the old one expires but still answers
    assert api.ids("42", version) == ["m-07", *ids[::-1]]
    assert len(full_pages(api, "42", version)) == 2
    assert api.ids("42", "1795381200000") == ids[::-1]
    [old] = [item for item in version_items() if item.version == "1795381200000"]
    assert old.expires_at is not None


def test_a_rebuild_larger_than_one_transaction_lists_everything_and_expires_what_it_replaced(
    api, invalidate
):
    # GIVEN 400 listed matches (133 full pages, more than one transaction holds)
    store = CollectionStore.for_settings(get_settings())
    ref = MATCHES.of("42")
    ids = [f"m-{number:03d}" for number in range(400)]
    store.add(
        (ref, Entry(match_id, at(n).replace("Z", ".000000Z"))) for n, match_id in enumerate(ids)
    )
    version = json.loads(invalidate({"collection": "users/42/matches"})["body"])["version"]
    assert api.ids("42", version) == ids[::-1]
    before = full_pages(api, "42", version)
    # WHEN a match older than all of them is recorded, so every page moves
    late = record(api, "m-0", -1)
    # THEN the new version lists it last, and every page it replaced expires
    assert api.ids("42", late) == [*ids[::-1], "m-0"]
    pages = page_items()
    assert not set(full_pages(api, "42", late)) & set(before)
    assert all(pages[url.rsplit("/", 1)[1]].expires_at is not None for url in before)
    assert all(
        pages[url.rsplit("/", 1)[1]].expires_at is None for url in full_pages(api, "42", late)
    )
