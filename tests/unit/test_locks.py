"""The rebuild lock: one generation per cache key, stale answers while it runs, leases."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from http import HTTPStatus

import pytest

from offload import locks, storage
from offload.auth import Client
from offload.config import get_settings
from offload.errors import DependencyUnavailable
from offload.feeds import REGISTRY, Feed
from offload.feeds.cachekey import FeedRequest
from offload.feeds.outcome import Outcome
from offload.feeds.service import FeedService
from offload.files import Generation
from offload.runtime import Runtime, get_runtime
from offload_local.lambdas import Containers
from tests.support import cache_status, feed_event, stored_generations
from tests.support.clock import FakeClock
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


# --- a lock whose owner is gone: short leases, renewed while the owner works ----------------


def feed_service(runtime: Runtime, clock: FakeClock) -> FeedService:
    """A feeds container living on `clock`'s time."""
    return FeedService(runtime, clock=clock, sleep=clock.sleep, launch=lambda job: None)


def ask(service: FeedService, client_id: str) -> Outcome:
    client = Client(client_id=client_id, scopes=frozenset({"feeds"}), hourly_limit=1000)
    return service.handle("probe.json", "", client, metered=lambda status: None).outcome


def orphan_a_lock(runtime: Runtime, clock: FakeClock, monkeypatch, client_id: str) -> None:
    """A request takes the lock, then is cut off from AWS: its upload and its release fail."""
    upload, release = storage.upload, locks.release
    monkeypatch.setattr(storage, "upload", fail_with(DependencyUnavailable("S3 is down")))
    monkeypatch.setattr(locks, "release", fail_with(DependencyUnavailable("DynamoDB is down")))
    with pytest.raises(DependencyUnavailable):
        ask(feed_service(runtime, clock), client_id)
    monkeypatch.setattr(storage, "upload", upload)
    monkeypatch.setattr(locks, "release", release)
    assert locks.current(cache_id_of(client_id)) is not None


def fail_with(error: Exception) -> Callable[..., None]:
    def failing(*args: object, **kwargs: object) -> None:
        raise error

    return failing


def cache_id_of(client_id: str) -> str:
    return FeedRequest(REGISTRY.get("probe"), "json", client_id, ()).cache_id


def test_a_lock_whose_owner_is_gone_is_free_within_its_short_lease(
    runtime, probe, monkeypatch, make_key
):
    # GIVEN a request cut off from AWS mid-generation, leaving its lock behind
    _, client_id = make_key()
    clock = FakeClock()
    orphan_a_lock(runtime, clock, monkeypatch, client_id)
    # WHEN AWS is back and the next request comes once the short lease has passed
    lease = get_settings().lock_lease_seconds
    assert lease <= 10
    clock.advance(lease + 0.1)
    # THEN it rebuilds at once and stores the file, waiting for nothing
    assert ask(feed_service(runtime, clock), client_id) == Outcome.STORED
    assert clock.slept == []
    assert probe.calls == 2
    assert len(stored_generations("probe")) == 1


def test_waiters_on_a_gone_owner_take_over_once_its_lease_ends(
    runtime, probe, monkeypatch, make_key
):
    # GIVEN a lock left behind a moment ago by a request cut off from AWS
    _, client_id = make_key()
    clock = FakeClock()
    orphan_a_lock(runtime, clock, monkeypatch, client_id)
    clock.advance(1)
    # WHEN a request finds it still leased
    first = ask(feed_service(runtime, clock), client_id)
    # THEN it waits no longer than the rest of the lease, then generates and stores
    assert first == Outcome.STORED
    assert 0 < sum(clock.slept) <= get_settings().lock_lease_seconds
    # AND the next one waits for that upload instead of generating again: no herd
    assert ask(feed_service(runtime, clock), client_id) == Outcome.COLLAPSED
    assert probe.calls == 2
    assert len(stored_generations("probe")) == 1


def test_a_live_owner_keeps_its_lock_by_renewing_the_lease(runtime):
    # GIVEN a lock taken with a short lease
    clock = FakeClock()
    held = lease(started_at=clock(), lease_seconds=6)
    assert locks.acquire(runtime.dynamodb, held, now=clock(), superseded_before=0).acquired
    heartbeat = locks.Heartbeat(held.generation, lease_seconds=6, clock=clock)
    # WHEN its owner is still working when the lease would end
    clock.advance(5)
    assert heartbeat.beat()
    # THEN the lease runs from the renewal, and nobody can take the lock meanwhile
    assert locks.current(CACHE_ID).lease_until == pytest.approx(clock() + 6)
    clock.advance(5)
    rival = lease(started_at=clock())
    assert not locks.acquire(runtime.dynamodb, rival, now=clock(), superseded_before=0).acquired
    # AND once its lease has run out and another took the lock, it stops renewing
    clock.advance(2)
    assert locks.acquire(runtime.dynamodb, rival, now=clock(), superseded_before=0).acquired
    assert not heartbeat.beat()
    assert locks.current(CACHE_ID) == rival


def test_the_heartbeat_renews_on_its_own_while_the_block_runs(runtime):
    clock = FakeClock()
    held = lease(started_at=clock(), lease_seconds=0.03)
    assert locks.acquire(runtime.dynamodb, held, now=clock(), superseded_before=0).acquired
    clock.advance(100)
    with locks.Heartbeat(held.generation, lease_seconds=0.03, clock=clock):
        renewed = wait_until(lambda: locks.current(CACHE_ID).lease_until > clock())
    assert renewed


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_failed_generations_lock_is_not_renewed(runtime):
    # GIVEN a lock marked failed by its background generation
    now = time.time()
    held = lease(started_at=now)
    assert locks.acquire(runtime.dynamodb, held, now=now, superseded_before=0).acquired
    assert locks.fail(held.generation, "GenerationFailed", until=now + 60)
    # WHEN the same job (Lambda delivering it again) tries to renew it
    # THEN it may not: a failed generation is not run again until its lease ends
    assert locks.renew(held.generation, until=now + 120) is False
    assert locks.current(CACHE_ID).lease_until == pytest.approx(now + 60)
