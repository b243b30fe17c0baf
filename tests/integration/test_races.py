"""Races through the local stack over real HTTP: limits, one generation, invalidation storms,
concurrent recordings. Loops are bounded; what is lost is counted, and must be nothing."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http import HTTPStatus

import httpx
import pytest

from offload import auth
from offload.feeds.outcome import Outcome
from tests.support import cache_status, match, signed_generation, stored_generations

# Concurrency measured against the clock (leases, waits, a storm of fixed length): run alone.
pytestmark = pytest.mark.serial

SERVED = {HTTPStatus.OK, HTTPStatus.TEMPORARY_REDIRECT}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """One thread-safe client for many threads; it never follows redirects or proxies."""
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    with httpx.Client(trust_env=False, timeout=90, limits=limits) as shared:
        yield shared


def all_at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run every call on its own thread, released together."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], httpx.Response]) -> httpx.Response:
        start.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_200_concurrent_requests_over_20_clients_get_exactly_their_limits(
    local_stack, make_key, client
):
    # GIVEN 20 clients allowed 5 requests an hour each
    limit, per_client = 5, 10
    keys = [make_key(hourly_limit=limit)[0] for _ in range(20)]
    url = local_stack.url("/feeds/catalog.json?category=toys")

    # WHEN each sends 10 requests, all 200 at once
    calls = [lambda key=key: client.get(url, headers={"X-Api-Key": key}) for key in keys]
    responses = all_at_once([call for call in calls for _ in range(per_client)])

    # THEN every client was served exactly 5 times and refused exactly 5 times
    outcomes = Counter(
        (response.request.headers["X-Api-Key"], response.status_code) for response in responses
    )
    for key in keys:
        served = sum(outcomes[(key, status)] for status in SERVED)
        assert (served, outcomes[(key, HTTPStatus.TOO_MANY_REQUESTS)]) == (limit, limit)


def test_100_concurrent_requests_for_a_cold_key_store_one_generation(local_stack, make_key, client):
    # GIVEN a client that has never asked for its kitchen catalog
    key, client_id = make_key()
    url = local_stack.url("/feeds/catalog.json?category=kitchen")

    # WHEN it asks 100 times at once
    responses = all_at_once([lambda: client.get(url, headers={"X-Api-Key": key})] * 100)

    # THEN all were served, one request generated and stored the file, and the bucket holds
    # exactly one object for the key (late waiters answer privately and store nothing)
    assert {response.status_code for response in responses} <= SERVED
    outcomes = Counter(cache_status(response.headers) for response in responses)
    assert outcomes[Outcome.STORED] == 1, outcomes
    assert len(stored_generations("catalog", client_id)) == 1
    redirected = {
        signed_generation(response.headers["Location"]).object_key
        for response in responses
        if response.status_code == HTTPStatus.TEMPORARY_REDIRECT
    }
    assert redirected <= set(stored_generations("catalog", client_id))


def test_no_answer_is_older_than_an_invalidation_finished_before_it_was_asked(
    local_stack, make_key, client
):
    # GIVEN a client's feed read continuously by 8 readers for a few seconds
    key, client_id = make_key()
    admin_key, _ = make_key(scope=auth.SCOPE_ADMIN)
    url = local_stack.url("/feeds/catalog.json?category=shoes")
    until = time.monotonic() + 6
    answers: list[tuple[float, httpx.Response]] = []
    invalidations: list[tuple[float, float]] = []  # (finished, recorded time)

    def read() -> None:
        while time.monotonic() < until:
            asked = time.time()
            answers.append((asked, client.get(url, headers={"X-Api-Key": key})))

    # WHEN hard invalidations of the client land every 0.4 s meanwhile
    def invalidate() -> None:
        while time.monotonic() < until:
            response = client.post(
                local_stack.url("/invalidations"),
                headers={"X-Api-Key": admin_key},
                json={"client": client_id},
            )
            assert response.status_code == HTTPStatus.ACCEPTED
            at = datetime.fromisoformat(response.json()["at"]).timestamp()
            invalidations.append((time.time(), at))
            time.sleep(0.4)

    with ThreadPoolExecutor(max_workers=9) as pool:
        for future in [pool.submit(read) for _ in range(8)] + [pool.submit(invalidate)]:
            future.result()

    # THEN every redirect went to a generation begun after every invalidation that had
    # finished before the request was sent (answers inline were generated by the request)
    assert len(invalidations) >= 5 and len(answers) >= 20
    assert {response.status_code for _, response in answers} <= SERVED
    for asked, response in answers:
        if response.status_code != HTTPStatus.TEMPORARY_REDIRECT:
            continue
        finished_before = [at for finished, at in invalidations if finished < asked]
        if finished_before:
            assert signed_generation(response.headers["Location"]).started_at > max(finished_before)


def test_50_concurrent_recordings_sharing_players_are_all_listed(local_stack, client):
    # GIVEN 50 matches among 6 players, each match with 2 or 3 of them
    run = uuid.uuid4().hex[:8]
    players = [f"racer-{run}-{number}" for number in range(6)]
    pairs = itertools.cycle(itertools.combinations(players, 2))
    matches = [
        match(
            f"race-{run}-{number}",
            *next(pairs),
            *([players[number % 6]] if number % 3 == 0 else []),
            finished_at=f"2026-11-21T18:{number // 60:02d}:{number % 60:02d}Z",
        )
        for number in range(50)
    ]
    for recorded in matches:  # a match lists a player at most once
        recorded["players"] = list(dict.fromkeys(recorded["players"]))

    # WHEN all are recorded at once
    admin = {"X-Api-Key": "demo-admin-key"}
    responses = all_at_once(
        [
            lambda body=body: client.post(local_stack.url("/matches"), headers=admin, json=body)
            for body in matches
        ]
    )

    # THEN each was created, and each player's current snapshot lists every match they played
    assert [response.status_code for response in responses] == [HTTPStatus.CREATED] * 50
    for player in players:
        version = client.get(local_stack.url(f"/users/{player}/matches/version")).json()
        index = client.get(
            local_stack.url(f"/users/{player}/matches/index"), params=version
        ).json()
        expected = {body["id"] for body in matches if player in body["players"]}
        assert set(index["match_ids"]) == expected
        assert len(index["match_ids"]) == len(expected)
