"""Through the local edge (Varnish, configured as the template's CloudFront distribution).

Each answer names the origin request that produced it (`apigw-requestid`, set by the API), so
"the origin saw one request" is what a client can see: every answer carries the same id.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from urllib.parse import urlsplit

import pytest
import requests

from offload.feeds.outcome import Outcome
from tests.support import cache_status
from tests.support.clients import absent
from tests.support.paths import CANONICAL, NON_CANONICAL
from tests.support.stack import TTLS, RunningStack

# Clock-dependent: TTLs of seconds run out while the test watches; run alone (make test).
pytestmark = pytest.mark.serial

ORIGIN_ID = "apigw-requestid"
POINTER_WINDOW = TTLS["PointerMaxAgeSeconds"] + TTLS["PointerStaleSeconds"]


@pytest.fixture
def edge(local_stack: RunningStack) -> str:
    """The edge's base URL; skipped where varnishd is missing, failed in CI."""
    if local_stack.edge_url is None:
        absent("varnishd is not installed (.ci/run installs it: apt-get install varnish)")
    return local_stack.edge_url


def edge_cache(response: requests.Response) -> str:
    """The edge's verdict, in CloudFront's words: Hit, Miss or RefreshHit."""
    return response.headers["X-Cache"].removesuffix(" from offload-edge")


def record_match(http: requests.Session, edge: str, players: list[str], **fields) -> str:
    match_id = fields.pop("id", f"m-{uuid.uuid4().hex[:12]}")
    document = {"id": match_id, "players": players, "finished_at": "2026-11-24T20:00:00Z"}
    response = http.post(
        f"{edge}/matches",
        json={**document, **fields},
        headers={"X-Api-Key": "demo-admin-key"},
        timeout=30,
    )
    assert response.status_code in {HTTPStatus.CREATED, HTTPStatus.OK}, response.text
    assert edge_cache(response) == "Miss"  # a POST always reaches the origin
    return match_id


def new_user() -> str:
    return f"edge-{uuid.uuid4().hex[:12]}"


def test_pointer_is_cached_for_max_age_then_revalidated(edge, http):
    url = f"{edge}/users/{new_user()}/matches/version"
    # GIVEN a pointer the edge has fetched once
    first = http.get(url, timeout=30)
    assert first.status_code == HTTPStatus.OK and edge_cache(first) == "Miss"
    # WHEN it is read again within max-age
    again = http.get(url, timeout=30)
    # THEN the edge answers without the origin
    assert edge_cache(again) == "Hit"
    assert again.headers[ORIGIN_ID] == first.headers[ORIGIN_ID]
    assert again.content == first.content
    # AND once max-age and the stale window have passed, the edge asks the origin again,
    # with the ETag, and the unchanged pointer comes back as a 304 that refreshes its copy
    time.sleep(POINTER_WINDOW + 0.5)
    later = http.get(url, timeout=30)
    assert edge_cache(later) == "RefreshHit"
    assert "fwd-status=304" in later.headers["Cache-Status"]
    assert later.content == first.content


def test_snapshot_and_finished_match_come_from_the_edge_for_the_whole_run(edge, http):
    # GIVEN a user with a finished match, and the snapshot version that lists it
    user = new_user()
    match_id = record_match(http, edge, [user])
    version = http.get(f"{edge}/users/{user}/matches/version", timeout=30).json()["version"]
    for path in (f"/users/{user}/matches/index?version={version}", f"/matches/{match_id}"):
        # WHEN many clients read it, past every short TTL of the run
        answers = [http.get(edge + path, timeout=30) for _ in range(5)]
        time.sleep(POINTER_WINDOW + 0.5)
        answers.append(http.get(edge + path, timeout=30))
        # THEN the origin answered once; every later read was an edge hit
        assert [edge_cache(answer) for answer in answers] == ["Miss"] + ["Hit"] * 5
        assert {answer.headers[ORIGIN_ID] for answer in answers} == {answers[0].headers[ORIGIN_ID]}
        assert all(answer.status_code == HTTPStatus.OK for answer in answers)
        assert int(answers[-1].headers["Age"]) >= POINTER_WINDOW
    listed = http.get(f"{edge}/users/{user}/matches/index?version={version}", timeout=30)
    assert listed.json()["match_ids"] == [match_id]


def test_concurrent_misses_reach_the_origin_once(edge, http):
    user = new_user()
    record_match(http, edge, [user])
    version = http.get(f"{edge}/users/{user}/matches/version", timeout=30).json()["version"]
    url = f"{edge}/users/{user}/matches/index?version={version}"

    def read(_: int) -> requests.Response:
        with requests.Session() as session:
            session.trust_env = False
            return session.get(url, timeout=30)

    # WHEN 20 clients ask for the same uncached snapshot at once
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(read, range(20)))
    # THEN the edge collapsed them into one origin request
    assert {answer.headers[ORIGIN_ID] for answer in answers} == {answers[0].headers[ORIGIN_ID]}
    assert sum(edge_cache(answer) == "Miss" for answer in answers) == 1


def test_an_unfinished_match_refreshes_after_its_max_age(edge, http):
    # GIVEN a match still in play, read through the edge
    user = new_user()
    match_id = record_match(http, edge, [user], finished_at=None, score="0-0")
    url = f"{edge}/matches/{match_id}"
    assert http.get(url, timeout=30).json()["score"] == "0-0"
    # WHEN it changes at the origin
    record_match(http, edge, [user], id=match_id, finished_at=None, score="1-0")
    # THEN the edge keeps the old body until max-age, then serves the new one
    cached = http.get(url, timeout=30)
    assert edge_cache(cached) == "Hit" and cached.json()["score"] == "0-0"
    time.sleep(TTLS["UnfinishedMaxAgeSeconds"] + 0.5)
    assert http.get(url, timeout=30).json()["score"] == "1-0"


def test_a_new_match_is_visible_within_max_age_and_the_stale_window(edge, http):
    # GIVEN a user whose pointer and index the edge has cached
    user = new_user()
    record_match(http, edge, [user])
    pointer = f"{edge}/users/{user}/matches/version"
    before = http.get(pointer, timeout=30).json()["version"]
    index = http.get(f"{edge}/users/{user}/matches/index", timeout=30)  # follows the 307
    assert len(index.json()["match_ids"]) == 1
    # WHEN a new match is recorded
    match_id = record_match(http, edge, [user, new_user()], finished_at="2026-11-24T21:00:00Z")
    # THEN the cached pointer may still name the old version...
    assert http.get(pointer, timeout=30).json()["version"] == before
    # ...but never once max-age and the stale window have passed
    time.sleep(POINTER_WINDOW + 0.5)
    after = http.get(pointer, timeout=30).json()["version"]
    assert int(after) > int(before)
    listed = http.get(f"{edge}/users/{user}/matches/index", timeout=30)
    assert listed.url.endswith(f"?version={after}")
    assert listed.json()["match_ids"][0] == match_id


def test_feeds_answers_are_never_cached(edge, http, make_key):
    key, _ = make_key()
    url = f"{edge}/feeds/catalog.json?category=toys"
    answers = [
        http.get(url, headers={"X-Api-Key": key}, allow_redirects=False, timeout=30)
        for _ in range(3)
    ]
    answers.append(http.get(f"{url}&key={key}", allow_redirects=False, timeout=30))
    answers.append(
        http.get(url, headers={"Authorization": f"Bearer {key}"}, allow_redirects=False, timeout=30)
    )
    # Every answer came from the origin, which counted each against the client's limit.
    assert len({answer.headers[ORIGIN_ID] for answer in answers}) == len(answers)
    assert [int(answer.headers["RateLimit-Remaining"]) for answer in answers] == [
        999,
        998,
        997,
        996,
        995,
    ]
    for answer in answers:
        assert edge_cache(answer) == "Miss"
        assert answer.headers["Cache-Control"] == "private, no-store"
        assert answer.headers["Cache-Status"].endswith("OffloadEdge; fwd=bypass")
        assert cache_status(answer.headers) in set(Outcome)
    assert any(answer.status_code == HTTPStatus.TEMPORARY_REDIRECT for answer in answers)


def test_junk_query_parameters_neither_split_nor_poison_the_cache(edge, http):
    url = f"{edge}/users/{new_user()}/matches/version"
    # GIVEN an uncached pointer asked for with a parameter the API does not take
    junk = http.get(f"{url}?utm=1", timeout=30)
    # THEN the origin's 400 is not stored, so the clean URL is cached as usual
    assert junk.status_code == HTTPStatus.BAD_REQUEST
    clean = http.get(url, timeout=30)
    assert edge_cache(clean) == "Miss" and clean.status_code == HTTPStatus.OK
    # AND once it is, junk on the same path is the same cache entry, not a new one
    again = http.get(f"{url}?utm=2", timeout=30)
    assert edge_cache(again) == "Hit" and again.headers[ORIGIN_ID] == clean.headers[ORIGIN_ID]


def test_the_index_is_keyed_on_its_version_only(edge, http):
    user = new_user()
    record_match(http, edge, [user])
    version = http.get(f"{edge}/users/{user}/matches/version", timeout=30).json()["version"]
    base = f"{edge}/users/{user}/matches/index"
    first = http.get(f"{base}?version={version}", timeout=30)
    assert first.status_code == HTTPStatus.OK
    same = http.get(f"{base}?utm=x&version={version}", timeout=30)
    assert edge_cache(same) == "Hit" and same.content == first.content
    unknown = http.get(f"{base}?version=1", timeout=30)
    assert unknown.status_code == HTTPStatus.NOT_FOUND and edge_cache(unknown) == "Miss"


def test_no_answer_varies(local_stack, edge, http):
    # Offload never sends Vary, directly or through the edge, on any collection read.
    user = new_user()
    match_id = record_match(http, edge, [user])
    version = http.get(f"{edge}/users/{user}/matches/version", timeout=30).json()["version"]
    paths = [
        f"/users/{user}/matches/version",
        f"/users/{user}/matches/index",
        f"/users/{user}/matches/index?version={version}",
        f"/matches/{match_id}",
        "/matches/nosuch",
    ]
    for base in (local_stack.base_url, edge):
        for path in paths:
            response = http.get(base + path, allow_redirects=False, timeout=30)
            assert "Vary" not in response.headers, (base, path, response.headers)


def get_as_sent(base_url: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET `path` byte for byte (requests would decode `%34` to `4` before sending)."""
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("path", NON_CANONICAL)
def test_a_non_canonical_path_is_refused_before_the_cache(edge, http, path):
    # GIVEN the canonical spelling of the resource, cached at the edge
    canonical = "/users/42/matches/version" if "users" in path else None
    if canonical is not None:
        http.get(f"{edge}{canonical}", timeout=30)
        assert edge_cache(http.get(f"{edge}{canonical}", timeout=30)) == "Hit"

    # WHEN another spelling of a path is asked for
    status, headers, body = get_as_sent(edge, path)

    # THEN the edge refuses it itself: no origin call, nothing stored, no second copy
    assert status == HTTPStatus.BAD_REQUEST, (path, headers)
    assert ORIGIN_ID not in headers and "X-Cache" not in headers
    assert headers["Content-Type"] == "application/problem+json"
    assert headers["Cache-Control"] == "no-store"
    assert json.loads(body)["status"] == HTTPStatus.BAD_REQUEST


def test_canonical_paths_pass_the_edge(edge):
    for path in CANONICAL:
        status, headers, _ = get_as_sent(edge, path)
        assert status != HTTPStatus.BAD_REQUEST or ORIGIN_ID in headers, path
        assert "X-Cache" in headers, path  # looked up or passed, as any request


def compressible_match(http: requests.Session, edge: str, **fields) -> str:
    """A match whose answer is JSON over the 1,000 bytes from which the edge compresses."""
    notes = " ".join(f"round {number} was close" for number in range(100))
    return record_match(http, edge, [new_user()], notes=notes, **fields)


def test_the_edge_compresses_and_says_so_in_a_weak_etag(local_stack, edge, http):
    # GIVEN a finished match whose answer the edge compresses, and the origin's strong ETag
    path = f"/matches/{compressible_match(http, edge)}"
    origin = http.get(local_stack.url(path), headers={"Accept-Encoding": "identity"}, timeout=30)
    strong = origin.headers["ETag"]
    assert len(origin.content) >= 1000 and not strong.startswith("W/")

    # WHEN clients ask through the edge, accepting gzip or not
    gzipped = http.get(f"{edge}{path}", headers={"Accept-Encoding": "gzip"}, timeout=30)
    plain = http.get(f"{edge}{path}", headers={"Accept-Encoding": "identity"}, timeout=30)

    # THEN the compressed answer's tag is the origin's, weakened (as CloudFront converts it);
    # the uncompressed one keeps the strong tag; both are the same bytes once decoded
    assert gzipped.headers["Content-Encoding"] == "gzip"
    assert gzipped.headers["ETag"] == f"W/{strong}"
    assert "Content-Encoding" not in plain.headers and plain.headers["ETag"] == strong
    assert gzipped.content == plain.content == origin.content


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_either_form_of_the_tag_gets_a_304_from_the_edge(local_stack, edge, http, encoding):
    path = f"/matches/{compressible_match(http, edge)}"
    strong = http.get(local_stack.url(path), timeout=30).headers["ETag"]
    http.get(f"{edge}{path}", headers={"Accept-Encoding": encoding}, timeout=30)
    for sent in (strong, f"W/{strong}"):
        headers = {"Accept-Encoding": encoding, "If-None-Match": sent}
        answer = http.get(f"{edge}{path}", headers=headers, timeout=30)
        assert answer.status_code == HTTPStatus.NOT_MODIFIED, (sent, answer.headers)
        assert answer.headers["ETag"] in {strong, f"W/{strong}"}


def test_a_compressed_copy_is_revalidated_with_the_origins_own_tag(edge, http):
    # GIVEN an unfinished match (short max-age) the edge holds compressed
    path = f"/matches/{compressible_match(http, edge, finished_at=None, score='0-0')}"
    first = http.get(f"{edge}{path}", headers={"Accept-Encoding": "gzip"}, timeout=30)
    assert first.headers["Content-Encoding"] == "gzip" and edge_cache(first) == "Miss"

    # WHEN its max-age has passed and it has not changed
    time.sleep(TTLS["UnfinishedMaxAgeSeconds"] + 0.5)
    later = http.get(f"{edge}{path}", headers={"Accept-Encoding": "gzip"}, timeout=30)

    # THEN the origin confirmed it with a 304 (it knows its strong tag, not the edge's W/ one)
    assert edge_cache(later) == "RefreshHit", later.headers
    assert later.content == first.content
def record_release(http: requests.Session, edge: str, repo: str, **fields) -> str:
    release_id = fields.pop("id", f"r-{uuid.uuid4().hex[:12]}")
    document = {"id": release_id, "repo": repo, "published_at": "2026-11-21T18:04:00Z"}
    response = http.post(
        f"{edge}/releases",
        json={**document, **fields},
        headers={"X-Api-Key": "demo-admin-key"},
        timeout=30,
    )
    assert response.status_code in {HTTPStatus.CREATED, HTTPStatus.OK}, response.text
    assert edge_cache(response) == "Miss"
    return release_id


def test_a_releases_snapshot_and_release_come_from_the_edge(edge, http):
    # GIVEN a repository with a published release, and the version that lists it
    repo = f"edge-{uuid.uuid4().hex[:12]}"
    release_id = record_release(http, edge, repo, name="v1.0")
    version = http.get(f"{edge}/repos/{repo}/releases/version", timeout=30).json()["version"]
    base = f"{edge}/repos/{repo}/releases/index"
    for path in (f"{base}?version={version}", f"{edge}/releases/{release_id}"):
        # WHEN it is read again and again
        answers = [http.get(path, timeout=30) for _ in range(4)]
        # THEN the origin answered once
        assert [edge_cache(answer) for answer in answers] == ["Miss"] + ["Hit"] * 3
        assert {answer.headers[ORIGIN_ID] for answer in answers} == {answers[0].headers[ORIGIN_ID]}
    # AND the index is keyed on its version alone, as every collection's index is
    same = http.get(f"{base}?utm=x&version={version}", timeout=30)
    assert edge_cache(same) == "Hit" and same.json() == {"release_ids": [release_id]}
    other = http.get(f"{base}?version=1", timeout=30)
    assert other.status_code == HTTPStatus.NOT_FOUND and edge_cache(other) == "Miss"


def test_a_releases_invalidation_is_visible_through_the_edge_within_the_window(edge, http):
    # GIVEN a repository whose pointer the edge has cached
    repo = f"edge-{uuid.uuid4().hex[:12]}"
    record_release(http, edge, repo)
    pointer = f"{edge}/repos/{repo}/releases/version"
    before = http.get(pointer, timeout=30).json()["version"]
    assert edge_cache(http.get(pointer, timeout=30)) == "Hit"

    # WHEN the collection is invalidated through the edge
    moved = http.post(
        f"{edge}/invalidations",
        json={"collection": f"repos/{repo}/releases"},
        headers={"X-Api-Key": "demo-admin-key"},
        timeout=30,
    )
    assert moved.status_code == HTTPStatus.ACCEPTED, moved.text

    # THEN once max-age and the stale window have passed, the edge serves the new version
    time.sleep(POINTER_WINDOW + 0.5)
    assert http.get(pointer, timeout=30).json()["version"] == moved.json()["version"] != before
