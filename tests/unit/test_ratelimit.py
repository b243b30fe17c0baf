"""Rate limiting: exact counts under concurrency, 429 with Retry-After and RateLimit-*."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import pytest

from offload import api_keys, auth, ratelimit
from offload.errors import RateLimited
from offload.table import RateCounter, dynamodb_client
from tests.support import problem_of


def test_request_over_the_limit_is_429_with_headers(call_feed, make_key, probe):
    key, _ = make_key(hourly_limit=3)
    before = time.time()
    answers = [call_feed("/feeds/probe.json", key=key) for _ in range(4)]
    after = time.time()
    assert all(a["statusCode"] < HTTPStatus.BAD_REQUEST for a in answers[:3])
    assert [a["headers"]["RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    limited = answers[3]
    assert limited["statusCode"] == HTTPStatus.TOO_MANY_REQUESTS
    problem_of(limited)
    assert limited["headers"]["RateLimit-Limit"] == "3"
    assert limited["headers"]["RateLimit-Remaining"] == "0"
    reset = int(limited["headers"]["RateLimit-Reset"])
    # the seconds to the end of the hour, as of the moment of the request
    assert reset in {seconds_left(before, 3600), seconds_left(after, 3600)}
    assert int(limited["headers"]["Retry-After"]) == reset


def seconds_left(now: float, window: int) -> int:
    """What RateLimit-Reset says at `now`: whole seconds to the end of the window."""
    return max(1, math.ceil((now // window + 1) * window - now))


def test_twenty_threads_count_exactly(aws, make_key):
    # GIVEN a client allowed 50 requests
    _, client_id = make_key(hourly_limit=50)
    client = auth.Client(client_id=client_id, scopes=frozenset({"feeds"}), hourly_limit=50)
    now = 1_800_000_000.0

    def hit(_: int) -> bool:
        try:
            ratelimit.consume(client, window_seconds=3600, now=now)
        except RateLimited:
            return False
        return True

    # WHEN 20 threads send 4 requests each
    with ThreadPoolExecutor(max_workers=20) as executor:
        allowed = list(executor.map(hit, range(80)))
    # THEN exactly 50 pass, and the stored count is exact
    assert allowed.count(True) == 50
    window = int(now // 3600 * 3600)
    counter = RateCounter.get(RateCounter.key_for(client_id, window), RateCounter.SORT)
    assert counter.hits == 50


def test_windows_are_independent(aws, make_key):
    _, client_id = make_key(hourly_limit=1)
    client = auth.Client(client_id=client_id, scopes=frozenset({"feeds"}), hourly_limit=1)
    ratelimit.consume(client, window_seconds=3600, now=3600 * 500 + 10)
    with pytest.raises(RateLimited):
        ratelimit.consume(client, window_seconds=3600, now=3600 * 500 + 20)
    assert ratelimit.consume(client, window_seconds=3600, now=3600 * 501).remaining == 0


def test_the_hourly_limit_scales_to_the_window():
    assert ratelimit.scaled_limit(1000, 3600) == 1000
    assert ratelimit.scaled_limit(1000, 60) == 16
    assert ratelimit.scaled_limit(10, 60) == 1


def test_a_client_past_its_limit_is_refused_without_another_write(aws, make_key):
    # GIVEN a client that has spent its window: its third request was refused by DynamoDB
    _, client_id = make_key(hourly_limit=2)
    client = auth.Client(client_id=client_id, scopes=frozenset({"feeds"}), hourly_limit=2)
    now = 1_800_000_000.0
    ratelimit.consume(client, window_seconds=3600, now=now)
    ratelimit.consume(client, window_seconds=3600, now=now)
    with pytest.raises(RateLimited):
        ratelimit.consume(client, window_seconds=3600, now=now)

    # WHEN it keeps asking in the same window, every DynamoDB write watched on the one
    # client every model and the limiter share, however the write is made
    written: list[str] = []
    dynamodb = dynamodb_client()
    watch = "before-call.dynamodb"
    dynamodb.meta.events.register(watch, lambda model, **_: written.append(model.name))
    try:
        with pytest.raises(RateLimited) as refused:
            ratelimit.consume(client, window_seconds=3600, now=now + 60)
        with pytest.raises(RateLimited):
            ratelimit.refuse_if_spent(client, window_seconds=3600, now=now + 61)
    finally:
        dynamodb.meta.events.unregister(watch)
    # THEN no call reached DynamoDB at all: no write, not even a read
    assert written == []
    # THEN it is refused as before, headers and all, from what the container remembers
    assert refused.value.headers == {
        "RateLimit-Limit": "2",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": str(3600 - 60 - int(now % 3600)),
    }
    assert refused.value.retry_after == 3600 - 60 - int(now % 3600)


def test_a_raised_limit_counts_afresh_within_the_window(aws, make_key):
    # GIVEN a client refused at its limit of 1
    _, client_id = make_key(hourly_limit=1)
    now = 1_800_000_000.0
    before = auth.Client(client_id=client_id, scopes=frozenset({"feeds"}), hourly_limit=1)
    ratelimit.consume(before, window_seconds=3600, now=now)
    with pytest.raises(RateLimited):
        ratelimit.consume(before, window_seconds=3600, now=now)
    # WHEN its limit is raised to 2 (as its key's record says once re-read)
    after = auth.Client(client_id=client_id, scopes=frozenset({"feeds"}), hourly_limit=2)
    # THEN one more request passes, counted on the same counter, and the next is refused
    assert ratelimit.consume(after, window_seconds=3600, now=now).remaining == 0
    with pytest.raises(RateLimited):
        ratelimit.consume(after, window_seconds=3600, now=now)


def test_every_key_of_a_client_shares_its_limit_and_its_counter(call_feed, make_key, probe):
    # GIVEN a client with a key, then a second key created with another limit
    first, client_id = make_key(hourly_limit=5)
    second, _ = make_key(client_id=client_id, hourly_limit=3)
    # WHEN the client sends requests with either key
    answers = [call_feed("/feeds/probe.json", key=key) for key in (first, second, first)]
    # THEN both keys count on one counter, against the client's (latest) limit
    assert [a["headers"]["RateLimit-Limit"] for a in answers] == ["3", "3", "3"]
    assert [a["headers"]["RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    for key in (second, first):
        refused = call_feed("/feeds/probe.json", key=key)
        assert refused["statusCode"] == HTTPStatus.TOO_MANY_REQUESTS
        assert refused["headers"]["RateLimit-Limit"] == "3"
    assert api_keys.client_limit(client_id) == 3
