"""The rebuild lock: one generation per cache key, stale answers while it runs, leases."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from http import HTTPStatus

import pytest

from offload import locks
from offload.config import get_settings
from offload.feeds import Feed
from offload.feeds.cachekey import FeedRequest
from offload.feeds.generation import Generation
from offload.feeds.outcome import Outcome
from offload.runtime import Runtime, get_runtime
from offload_local.lambdas import Containers
from tests.support import cache_status, feed_event, stored_generations
from tests.support.feeds import Probe, age_entries, download

REQUEST = FeedRequest(
    feed=Feed(name="probe", formats={"json": "application/json"}, generate=bytes),
    format="json",
    client_id="c",
    params=(),
)
CACHE_ID = REQUEST.cache_id


def lease(*, started_at: float, lease_seconds: float = 60) -> locks.Lease:
    return locks.Lease(Generation.start(REQUEST, started_at), started_at + lease_seconds)


def during_a_rebuild(pool: Containers, key: str, probe: Probe) -> tuple[dict, dict]:
    """Hold one request inside the generator, send a second meanwhile; both answers."""
    probe.gate = threading.Event()
    probe.started.clear()
    with ThreadPoolExecutor(max_workers=2) as executor:
        rebuilding = executor.submit(pool.invoke, feed_event("/feeds/probe.json", key=key))
        assert probe.started.wait(5)
        second = executor.submit(pool.invoke, feed_event("/feeds/probe.json", key=key))
        # A STALE answer comes back at once; a waiter is still polling when the gate opens.
        wait([second], timeout=0.3)
        probe.gate.set()
        return rebuilding.result(timeout=10), second.result(timeout=10)


def test_second_request_gets_the_stale_file_while_one_rebuilds(
    call_feed, containers, make_key, probe, deliver_s3_events
):
    # GIVEN a recorded file that has since gone stale by age
    key, _ = make_key()
    first = call_feed("/feeds/probe.json", key=key)
    deliver_s3_events()
    age_entries(by=7200)
    # WHEN one request is rebuilding and a second arrives meanwhile
    rebuilt, second = during_a_rebuild(containers("FeedsFunction"), key, probe)
    # THEN the second is sent to the old file, and the first answers with the new one
    assert second["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    assert cache_status(second["headers"]) == Outcome.STALE
    assert download(second["headers"]["Location"]) == first["body"].encode()
    assert cache_status(rebuilt["headers"]) == Outcome.STORED
    assert probe.calls == 2


def test_hard_invalidation_is_never_answered_stale(
    call_feed, containers, make_key, probe, invalidate, deliver_s3_events
):
    # GIVEN a recorded file, then a (hard) invalidation of its feed
    key, _ = make_key()
    call_feed("/feeds/probe.json", key=key)
    deliver_s3_events()
    invalidate({"feed": "probe"})
    # WHEN one request rebuilds and a second arrives meanwhile
    rebuilt, second = during_a_rebuild(containers("FeedsFunction"), key, probe)
    # THEN the second waited for the new file instead of getting the invalidated one
    assert cache_status(rebuilt["headers"]) == Outcome.STORED
    assert second["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    assert cache_status(second["headers"]) == Outcome.COLLAPSED
    assert download(second["headers"]["Location"]) == rebuilt["body"].encode()
    assert probe.calls == 2


def test_soft_invalidation_allows_stale_while_rebuilding(
    call_feed, containers, make_key, probe, invalidate, deliver_s3_events
):
    key, _ = make_key()
    call_feed("/feeds/probe.json", key=key)
    deliver_s3_events()
    invalidate({"feed": "probe", "soft": True})
    rebuilt, second = during_a_rebuild(containers("FeedsFunction"), key, probe)
    assert cache_status(rebuilt["headers"]) == Outcome.STORED
    assert cache_status(second["headers"]) == Outcome.STALE


@pytest.mark.serial  # the waiters' bounded wait is wall-clock time
def test_cold_key_with_100_concurrent_requests_generates_once(containers, make_key, probe):
    # GIVEN a cold key and a generator that takes a moment
    key, _ = make_key()
    probe.gate = threading.Event()
    pool = containers("FeedsFunction")
    # WHEN 100 requests arrive at once
    with ThreadPoolExecutor(max_workers=100) as executor:
        futures = [
            executor.submit(pool.invoke, feed_event("/feeds/probe.json", key=key))
            for _ in range(100)
        ]
        assert probe.started.wait(5)
        time.sleep(0.3)
        probe.gate.set()
        responses = [future.result(timeout=30) for future in futures]
    # THEN the generator ran once, and every client got the same file
    assert probe.calls == 1
    inline = [r for r in responses if r["statusCode"] == HTTPStatus.OK]
    redirected = [r for r in responses if r["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT]
    assert len(inline) == 1 and len(redirected) == 99
    body = inline[0]["body"].encode()
    assert {download(r["headers"]["Location"]) for r in redirected[:5]} == {body}


def test_a_lease_that_ran_out_can_be_taken_over(runtime: Runtime):
    now = time.time()
    first = lease(started_at=now - 120, lease_seconds=60)
    assert locks.acquire(
        runtime.dynamodb, first, now=now - 120, superseded_before=0
    ).acquired
    second = lease(started_at=now)
    taken = locks.acquire(runtime.dynamodb, second, now=now, superseded_before=0)
    assert taken.acquired
    # The slow first owner finishing late cannot free the new owner's lock.
    assert locks.release(first.generation) is False
    assert locks.current(CACHE_ID) == second
    assert locks.release(second.generation) is True
    assert locks.current(CACHE_ID) is None


def test_a_live_lease_is_not_taken_and_the_loser_learns_the_holder(runtime: Runtime):
    now = time.time()
    holder = lease(started_at=now)
    assert locks.acquire(runtime.dynamodb, holder, now=now, superseded_before=0).acquired
    challenger = lease(started_at=now + 1)
    taken = locks.acquire(runtime.dynamodb, challenger, now=now + 1, superseded_before=0)
    assert not taken.acquired
    assert taken.lease == holder


def test_a_lock_on_an_invalidated_generation_can_be_taken_over(runtime: Runtime):
    now = time.time()
    holder = lease(started_at=now)
    assert locks.acquire(runtime.dynamodb, holder, now=now, superseded_before=0).acquired
    challenger = lease(started_at=now + 2)
    taken = locks.acquire(
        runtime.dynamodb, challenger, now=now + 2, superseded_before=now + 1
    )
    assert taken.acquired


def test_a_generation_recorded_just_before_the_lock_is_not_repeated(
    monkeypatch, containers, make_key, probe, deliver_s3_events
):
    # GIVEN a request that read "no entry", and meanwhile another request's generation
    # completes and is recorded (which releases the lock) before this one takes the lock
    key, _ = make_key()
    pool = containers("FeedsFunction")
    real_acquire = locks.acquire
    raced: list[dict] = []
    rival_started = threading.Event()

    def acquire_after_a_rival(*args, **kwargs):
        if not rival_started.is_set():
            rival_started.set()
            raced.append(pool.invoke(feed_event("/feeds/probe.json", key=key)))
            deliver_s3_events()
        return real_acquire(*args, **kwargs)

    monkeypatch.setattr(locks, "acquire", acquire_after_a_rival)
    # WHEN it takes the lock
    response = pool.invoke(feed_event("/feeds/probe.json", key=key))
    # THEN it notices the recorded file instead of generating it again
    assert cache_status(raced[0]["headers"]) == Outcome.STORED
    assert response["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    assert cache_status(response["headers"]) == Outcome.HIT
    assert probe.calls == 1


def test_past_the_lock_wait_a_request_generates_without_uploading(
    monkeypatch, containers, make_key, probe
):
    # GIVEN a short lock wait and an owner stuck in its generation
    monkeypatch.setenv("LOCK_WAIT_SECONDS", "0.3")
    get_settings.cache_clear()
    get_runtime.cache_clear()
    key, _ = make_key()
    pool = containers("FeedsFunction")
    stuck = threading.Event()
    probe.during = lambda: stuck.wait(10) if probe.calls == 1 else None
    with ThreadPoolExecutor(max_workers=1) as executor:
        owner = executor.submit(pool.invoke, feed_event("/feeds/probe.json", key=key))
        assert probe.started.wait(5)
        # WHEN a second request has waited out the lock
        second = pool.invoke(feed_event("/feeds/probe.json", key=key))
        stuck.set()
        owner.result(timeout=10)
    # THEN it answered from a generation of its own, inline, and stored nothing
    assert second["statusCode"] == HTTPStatus.OK
    assert cache_status(second["headers"]) == Outcome.PRIVATE
    assert probe.calls == 2
    assert len(stored_generations()) == 1
