"""Long generations: a feed that may outlast API Gateway's 30 s generates in the background.

The feeds handler starts the generator function (an asynchronous Lambda invoke, captured
here) and answers 202; the generator handler runs the job; the recorder then makes the
stored file the answer, as for any upload.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

import pytest

from offload.config import get_settings
from offload.errors import DependencyUnavailable, GenerationFailed, GenerationTimedOut
from offload.feeds.background import BackgroundJob, LambdaLauncher, failure_of
from offload.feeds.generation import Generation
from offload.feeds.outcome import Outcome
from offload.locks import Lease, current
from offload.models import RebuildLock
from tests.support import cache_status, problem_of, stored_generations
from tests.support.feeds import Probe, download, probe_feed

SLOW = "/feeds/slow.json"


@pytest.fixture
def slow() -> Iterator[Probe]:
    """A feed `slow` whose generation may take a minute: it runs in the background."""
    with probe_feed("slow", generation_timeout_seconds=60.0) as spy:
        yield spy


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[BackgroundJob]:
    """The jobs the feeds function hands to the generator function, in order."""
    jobs: list[BackgroundJob] = []
    monkeypatch.setattr(LambdaLauncher, "__call__", lambda self, job: jobs.append(job))
    return jobs


@pytest.fixture
def run_job(handler: Callable[[str], Callable[[dict], Any]]) -> Callable[[BackgroundJob], str]:
    """Invoke the generator function's handler with a job's event, as Lambda would."""

    def run(job: BackgroundJob) -> str:
        return handler("FeedGeneratorFunction")(job.event())["finished"]

    return run


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
    # THEN its lock is held, marked failed, for one lock lease from then
    lease = current(launched[0].generation.cache_id)
    assert lease is not None and lease.failure == "GenerationFailed"
    lease_seconds = get_settings().lock_lease_seconds
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
