"""Long generations: a feed that may outlast API Gateway's 30 s generates in the background.

The feeds handler starts the generator function (an asynchronous Lambda invoke, captured
here) and answers 202; the generator handler runs the job; the recorder then makes the
stored file the answer, as for any upload.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable
from http import HTTPStatus

import pytest
from botocore.exceptions import EndpointConnectionError

from offload import locks, storage
from offload.config import get_settings
from offload.errors import DependencyUnavailable, GenerationFailed, GenerationTimedOut
from offload.feeds.background_build import (
    RETRY_ATTEMPTS,
    RETRY_BASE_SECONDS,
    RETRY_MAX_SECONDS,
    BackgroundJob,
    Finished,
    LambdaLauncher,
    failure_of,
    run,
)
from offload.feeds.outcome import Outcome
from offload.files import Generation
from offload.locks import Lease, current
from offload.table import RebuildLock
from tests.support import cache_status, problem_of, stored_generations
from tests.support.clock import FakeClock
from tests.support.feeds import download

SLOW = "/feeds/slow.json"


def test_a_long_generation_answers_202_then_the_stored_file(
    call_feed, make_key, slow, launched, run_job, deliver_s3_events
):
    key, _ = make_key()
    # WHEN a client asks for a file that takes long to generate
    first = call_feed(SLOW, key=key)
    # THEN the request answers 202 at once, with when and where to ask again
    assert first["statusCode"] == HTTPStatus.ACCEPTED
    assert cache_status(first["headers"]) == Outcome.PENDING
    assert first["headers"]["Retry-After"] == "5"
    assert first["headers"]["Location"] == SLOW
    assert first["headers"]["Cache-Control"] == "private, no-store"
    assert json.loads(first["body"]) == {"status": "pending", "retry_after": 5, "location": SLOW}
    assert first["headers"]["RateLimit-Remaining"] == "999"
    # AND the generation was handed to the generator function, not run in the request
    assert slow.calls == 0
    assert len(launched) == 1
    # WHEN it asks again while the generation runs
    again = call_feed(SLOW, key=key)
    # THEN it is still pending, and nothing new was started
    assert again["statusCode"] == HTTPStatus.ACCEPTED
    assert len(launched) == 1
    # WHEN the generator function has run and the upload is recorded
    assert run_job(launched[0]) == "stored"
    deliver_s3_events()
    # THEN the next request is redirected to the file the background generation stored
    done = call_feed(SLOW, key=key)
    assert done["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    assert cache_status(done["headers"]) == Outcome.HIT
    assert json.loads(download(done["headers"]["Location"])) == {"feed": "slow", "generation": 1}
    assert slow.calls == 1


def test_a_stale_file_answers_while_the_background_rebuild_runs(
    call_feed, make_key, slow, launched, run_job, deliver_s3_events, invalidate
):
    key, _ = make_key()
    call_feed(SLOW, key=key)
    run_job(launched[0])
    deliver_s3_events()
    # WHEN the file is invalidated softly
    assert invalidate({"feed": "slow", "soft": True})["statusCode"] == HTTPStatus.ACCEPTED
    answer = call_feed(SLOW, key=key)
    # THEN the old file answers and a background rebuild has started
    assert answer["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    assert cache_status(answer["headers"]) == Outcome.STALE
    assert len(launched) == 2
    # AND once it is stored, the new file answers
    run_job(launched[1])
    deliver_s3_events()
    fresh = call_feed(SLOW, key=key)
    assert cache_status(fresh["headers"]) == Outcome.HIT
    assert json.loads(download(fresh["headers"]["Location"]))["generation"] == 2


def test_a_failed_background_generation_is_reported_until_its_lease_ends(
    call_feed, make_key, slow, launched, run_job
):
    key, _ = make_key()
    slow.fail = RuntimeError("the data source is down")
    call_feed(SLOW, key=key)
    # WHEN the background generation fails
    failed_from = time.time()
    assert run_job(launched[0]) == "failed"
    failed_by = time.time()
    # THEN its lock is held, marked failed, for FAILED_GENERATION_SECONDS from then
    lease = current(launched[0].generation.cache_id)
    assert lease is not None and lease.failure == "GenerationFailed"
    lease_seconds = get_settings().failed_generation_seconds
    assert failed_from + lease_seconds <= lease.lease_until <= failed_by + lease_seconds
    # AND requests are told so, with when it will be tried again, instead of waiting on
    asked_from = time.time()
    answer = call_feed(SLOW, key=key)
    asked_by = time.time()
    assert answer["statusCode"] == HTTPStatus.BAD_GATEWAY
    retry_after = int(answer["headers"]["Retry-After"])
    # the rest of the lease, in whole seconds, as of the moment the request was answered
    answered = range(
        math.ceil(lease.lease_until - asked_by), math.ceil(lease.lease_until - asked_from) + 1
    )
    assert retry_after in answered
    assert problem_of(answer)["detail"] == (
        f"the last generation of this file failed; it is tried again in {retry_after} s"
    )
    assert len(launched) == 1
    # WHEN the failure's lease has run out
    generation = launched[0].generation
    RebuildLock(RebuildLock.key_for(generation.cache_id), RebuildLock.SORT).update(
        actions=[RebuildLock.lease_until.set(0)]
    )
    slow.fail = None
    # THEN the next request starts the generation again
    retried = call_feed(SLOW, key=key)
    assert retried["statusCode"] == HTTPStatus.ACCEPTED
    assert len(launched) == 2
    assert run_job(launched[1]) == "stored"


@pytest.mark.parametrize(
    ("failure", "error", "status"),
    [
        ("GenerationFailed", GenerationFailed, HTTPStatus.BAD_GATEWAY),
        ("GenerationTimedOut", GenerationTimedOut, HTTPStatus.SERVICE_UNAVAILABLE),
        ("DependencyUnavailable", DependencyUnavailable, HTTPStatus.SERVICE_UNAVAILABLE),
        ("something else", GenerationFailed, HTTPStatus.BAD_GATEWAY),
    ],
)
def test_a_remembered_failure_is_answered_as_what_it_was(failure, error, status):
    generation = Generation("1764000000000000-0123abcd", "0" * 32, "files/x")
    answered = failure_of(Lease(generation, lease_until=130.2, failure=failure), now=100.0)
    assert type(answered) is error
    assert answered.status == status
    assert answered.retry_after == 31


def test_a_generation_that_cannot_be_started_is_a_503_and_frees_the_lock(
    call_feed, make_key, slow, monkeypatch
):
    # GIVEN no generator function to invoke (the emulated account has none)
    key, _ = make_key()
    # WHEN a request must start a background generation
    answer = call_feed(SLOW, key=key)
    # THEN it answers 503 with Retry-After, and leaves the lock free for the next request
    assert answer["statusCode"] == HTTPStatus.SERVICE_UNAVAILABLE
    assert "Retry-After" in answer["headers"]
    assert "could not start" in problem_of(answer)["detail"]
    jobs: list[BackgroundJob] = []
    monkeypatch.setattr(LambdaLauncher, "__call__", lambda self, job: jobs.append(job))
    assert call_feed(SLOW, key=key)["statusCode"] == HTTPStatus.ACCEPTED
    assert len(jobs) == 1


def test_a_repeated_or_superseded_job_generates_nothing(
    call_feed, make_key, slow, launched, run_job, invalidate
):
    key, _ = make_key()
    call_feed(SLOW, key=key)
    # WHEN a hard invalidation lands before the generator function starts
    assert invalidate({"feed": "slow"})["statusCode"] == HTTPStatus.ACCEPTED
    call_feed(SLOW, key=key)
    # THEN the next request starts a new generation, which now holds the lock
    assert len(launched) == 2
    lease = current(launched[1].generation.cache_id)
    assert lease is not None and lease.generation.owner == launched[1].generation.owner
    # AND the superseded job, when it runs, generates nothing
    assert run_job(launched[0]) == "superseded"
    assert slow.calls == 0
    # AND Lambda delivering the live one twice generates it once
    assert run_job(launched[1]) == "stored"
    assert run_job(launched[1]) == "superseded"
    assert slow.calls == 1
    assert len(stored_generations("slow")) == 1


def test_the_generator_function_refuses_what_is_not_a_job(slow, handler):
    with pytest.raises(ValueError, match="not a background generation"):
        handler("FeedGeneratorFunction")({"Records": []})
    job_like = {"kind": "offload.feeds.generate", "feed": "slow", "format": "json"}
    with pytest.raises(ValueError, match="does not belong"):
        handler("FeedGeneratorFunction")({**job_like, "client_id": "a", "object_key": "x"})


# --- dependency failures: retried in the function, then a 503, never a crash ----------------

OUTAGE = EndpointConnectionError(endpoint_url="http://127.0.0.1:1/")


def outage_for(calls: int) -> Callable[[], None]:
    """A generator whose data source is unreachable for its first `calls` calls."""
    failed = itertools.count(1)

    def during() -> None:
        if next(failed) <= calls:
            raise OUTAGE

    return during


def test_a_brief_outage_during_a_background_generation_is_retried_with_backoff(
    call_feed, make_key, slow, launched, runtime, deliver_s3_events
):
    key, _ = make_key()
    call_feed(SLOW, key=key)
    # GIVEN the generator's data source is unreachable for its first two attempts, and a
    # request asks meanwhile
    pending: list[dict] = []
    fail_twice = outage_for(2)

    def during() -> None:
        pending.append(call_feed(SLOW, key=key))
        fail_twice()

    slow.during = during
    clock = FakeClock()
    # WHEN the generator function runs the job
    finished = run(launched[0], runtime, sleep=clock.sleep)
    # THEN it tried again after backing off, twice, and stored the file
    assert finished is Finished.STORED
    assert slow.calls == 3
    assert len(clock.slept) == 2
    for attempt, slept in enumerate(clock.slept, start=1):
        ceiling = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempt - 1))
        assert ceiling / 2 <= slept <= ceiling
    # AND requests meanwhile were told to come back, not that it failed
    assert [answer["statusCode"] for answer in pending] == [HTTPStatus.ACCEPTED] * 3
    deliver_s3_events()
    assert cache_status(call_feed(SLOW, key=key)["headers"]) == Outcome.HIT
    assert len(launched) == 1


def test_an_upload_that_fails_briefly_is_retried_with_the_same_bytes(
    make_key, call_feed, slow, launched, runtime, monkeypatch
):
    key, _ = make_key()
    call_feed(SLOW, key=key)
    uploads: list[bytes] = []
    real_upload = storage.upload

    def upload(s3, bucket, generation, data, **options):
        uploads.append(data)
        if len(uploads) <= 2:
            raise DependencyUnavailable("S3 is unreachable")
        return real_upload(s3, bucket, generation, data, **options)

    monkeypatch.setattr(storage, "upload", upload)
    clock = FakeClock()
    assert run(launched[0], runtime, sleep=clock.sleep) is Finished.STORED
    # The file was generated once and the same bytes went up each time.
    assert slow.calls == 1
    assert len(uploads) == 3 and len(set(uploads)) == 1
    assert stored_generations("slow") == [launched[0].generation.object_key]


def test_an_outage_that_outlasts_the_retries_is_a_503_not_a_dead_letter(
    call_feed, make_key, slow, launched, runtime
):
    key, _ = make_key()
    call_feed(SLOW, key=key)
    # GIVEN a data source that stays unreachable
    slow.during = outage_for(RETRY_ATTEMPTS)
    clock = FakeClock()
    # WHEN the generator function runs the job
    finished = run(launched[0], runtime, sleep=clock.sleep)
    # THEN it gave up after its bounded retries without failing the invocation (nothing
    # goes to the dead-letter queue: retrying later can fix it)
    assert finished is Finished.FAILED
    assert slow.calls == RETRY_ATTEMPTS
    assert len(clock.slept) == RETRY_ATTEMPTS - 1
    lease = current(launched[0].generation.cache_id)
    assert lease is not None and lease.failure == "DependencyUnavailable"
    # AND requests answer 503 with Retry-After for RETRY_AFTER_SECONDS, then start it again
    asked_from = time.time()
    answer = call_feed(SLOW, key=key)
    asked_by = time.time()
    assert answer["statusCode"] == HTTPStatus.SERVICE_UNAVAILABLE
    retry_after = int(answer["headers"]["Retry-After"])
    assert math.ceil(lease.lease_until - asked_by) <= retry_after
    assert retry_after <= math.ceil(lease.lease_until - asked_from)
    assert lease.lease_until - asked_from <= get_settings().retry_after_seconds


def test_a_lock_that_cannot_be_marked_failed_is_left_to_its_short_lease(
    call_feed, make_key, slow, launched, runtime, monkeypatch
):
    key, _ = make_key()
    call_feed(SLOW, key=key)
    slow.during = outage_for(RETRY_ATTEMPTS)
    monkeypatch.setattr(locks, "fail", lambda *args, **kwargs: (_ for _ in ()).throw(OUTAGE))
    before = time.time()
    # WHEN DynamoDB fails too as the job gives up
    assert run(launched[0], runtime, sleep=FakeClock().sleep) is Finished.FAILED
    # THEN the lock keeps only the short lease its heartbeat gave it, and is free soon
    lease = current(launched[0].generation.cache_id)
    assert lease is not None and lease.failure is None
    assert lease.lease_until <= time.time() + get_settings().lock_lease_seconds
    assert lease.lease_until >= before


def test_a_defect_fails_the_invocation_for_the_dead_letter_queue(
    call_feed, make_key, slow, launched, runtime, monkeypatch
):
    key, _ = make_key()
    call_feed(SLOW, key=key)
    monkeypatch.setattr(storage, "upload", lambda *args, **kwargs: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run(launched[0], runtime, sleep=FakeClock().sleep)


def test_a_dependency_failure_in_a_request_generation_is_a_503_with_retry_after(
    call_feed, make_key, probe
):
    key, _ = make_key()
    probe.fail = OUTAGE
    answer = call_feed("/feeds/probe.json", key=key)
    assert answer["statusCode"] == HTTPStatus.SERVICE_UNAVAILABLE
    assert answer["headers"]["Retry-After"] == str(get_settings().retry_after_seconds)
    assert problem_of(answer)["title"] == "Service unavailable"


def test_an_outage_as_the_job_starts_is_retried_too(
    make_key, call_feed, slow, launched, runtime, monkeypatch
):
    key, _ = make_key()
    call_feed(SLOW, key=key)
    # GIVEN S3 unreachable for the job's first two checks of whether its file is stored
    checks = itertools.count(1)
    real_exists = storage.object_exists

    def object_exists(s3, bucket, key):
        if next(checks) <= 2:
            raise OUTAGE
        return real_exists(s3, bucket, key)

    monkeypatch.setattr(storage, "object_exists", object_exists)
    clock = FakeClock()
    # WHEN the generator function runs it, THEN it waits the outage out and stores the file
    assert run(launched[0], runtime, sleep=clock.sleep) is Finished.STORED
    assert len(clock.slept) == 2
    assert stored_generations("slow") == [launched[0].generation.object_key]
