"""Generations too long for API Gateway: a request starts one, the generator function runs it.

The request that takes the rebuild lock invokes the generator function asynchronously
(Lambda's `Event` invocation) with a `BackgroundJob` and answers at once; the function
generates and uploads, renewing the lock's short lease meanwhile, and the recorder moves
the cache entry and releases the lock as it does for any upload.

A dependency failure (an AWS outage or throttle) is retried in the function, a few times
with backoff; requests meanwhile answer 202. One that outlasts the retries marks the lock
`DependencyUnavailable`, which requests answer 503 with Retry-After until the next request
starts the generation again. A generator's failure marks the lock too, for longer, so
requests report it rather than start the same doomed generation again at once. Only a
defect (an error of no known kind) fails the invocation and reaches the dead-letter queue.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any, TypeVar

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from offload import locks, storage
from offload.config import Settings
from offload.errors import (
    DependencyUnavailable,
    GenerationFailed,
    GenerationTimedOut,
    OffloadError,
)
from offload.feeds.build import generate_file, source_metadata
from offload.feeds.cachekey import FeedRequest
from offload.feeds.events import Ended, GenerationEnded, publish
from offload.feeds.plugin import Generated
from offload.feeds.registry import FeedRegistry
from offload.files import Generation
from offload.observability import logger, metrics
from offload.runtime import Runtime, client_config
from offload.storage import Integrity

# Names an event as a background generation, so nothing else is taken for one.
KIND = "offload.feeds.generate"
# What a failed generation is remembered as, and the error requests answer with meanwhile.
FAILURES: dict[str, type[OffloadError]] = {
    error.__name__: error for error in (GenerationFailed, GenerationTimedOut, DependencyUnavailable)
}

Launch = Callable[["BackgroundJob"], None]
# A dependency failure is tried again this many times in all, after 1, 2, 4 s (each with
# jitter): an outage of a few seconds costs a delay, not a failure.
RETRY_ATTEMPTS = 4
RETRY_BASE_SECONDS = 1.0
RETRY_MAX_SECONDS = 8.0
_T = TypeVar("_T")


class Finished(StrEnum):
    """How a background invocation ended."""

    STORED = "stored"
    # The file was stored already (a repeated event), or the lock is no longer this
    # generation's (an invalidation let a newer one take over). Nothing to do.
    SUPERSEDED = "superseded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class BackgroundJob:
    """One generation to run in the background: what to build and under which key."""

    request: FeedRequest
    generation: Generation

    def event(self) -> dict[str, Any]:
        """The invocation's payload."""
        request = self.request
        return {
            "kind": KIND,
            "feed": request.feed.name,
            "format": request.format,
            "client_id": request.client_id,
            "params": dict(request.params),
            "object_key": self.generation.object_key,
        }

    @classmethod
    def of_event(cls, event: Mapping[str, Any], registry: FeedRegistry) -> BackgroundJob:
        """The job an event describes; ValueError for anything else."""
        if event.get("kind") != KIND:
            raise ValueError("not a background generation")
        feed = registry.get(str(event.get("feed")))
        if feed is None or event.get("format") not in feed.formats:
            raise ValueError(f"no feed {event.get('feed')!r} in format {event.get('format')!r}")
        params = event.get("params") or {}
        request = FeedRequest(
            feed=feed,
            format=str(event["format"]),
            client_id=str(event.get("client_id")),
            params=tuple(sorted((str(k), str(v)) for k, v in params.items())),
        )
        generation = Generation.of_object(str(event.get("object_key")))
        if generation is None or generation.cache_id != request.cache_id:
            raise ValueError("the object key does not belong to the request")
        return cls(request, generation)


class LambdaLauncher:
    """Starts background jobs as asynchronous invocations of the generator function."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Any = None
        self._lock = threading.Lock()

    def __call__(self, job: BackgroundJob) -> None:
        try:
            self._lambda().invoke(
                FunctionName=self._settings.generator_function_name,
                InvocationType="Event",
                Payload=json.dumps(job.event()).encode(),
            )
        except (BotoCoreError, ClientError) as exc:
            raise DependencyUnavailable(
                f"could not start generating {job.request.feed.name!r}; retry shortly"
            ) from exc

    def _lambda(self) -> Any:
        # Created on first use: most containers never start a background generation.
        with self._lock:
            if self._client is None:
                self._client = boto3.client("lambda", config=client_config(self._settings))
            return self._client


def failure_of(lease: locks.Lease, now: float) -> OffloadError:
    """The error a request answers with while a failed generation's lease lasts."""
    error = FAILURES.get(lease.failure or "", GenerationFailed)
    retry_after = max(1, math.ceil(lease.lease_until - now))
    return error(
        f"the last generation of this file failed; it is tried again in {retry_after} s",
        retry_after=retry_after,
    )


def run(
    job: BackgroundJob,
    runtime: Runtime,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Finished:
    """Generate and store the job's file if its generation still holds the lock."""
    generation = job.generation
    settings = runtime.settings
    bucket = settings.bucket_name
    if bucket is None:
        raise ValueError("background generations are stored in a bucket; none is configured")
    # Lambda delivers an event at least once: a repeat finds the file stored (and the lock
    # still held until the recorder sees the upload) and must not generate it again; nor
    # may it run a generation whose lock is marked failed.
    lease = settings.lock_lease_seconds
    request = job.request

    def superseded() -> bool:
        stored = storage.object_exists(runtime.s3, bucket, generation.object_key)
        return stored or not locks.renew(generation, until=clock() + lease)

    started = time.monotonic()
    ended = partial(
        GenerationEnded,
        feed=request.feed.name,
        format=request.format,
        client=request.client_id,
        generation_id=generation.id,
    )
    try:
        # An outage as the job starts is retried like one during its generation.
        if _retrying(superseded, sleep):
            extra = {"object_key": generation.object_key}
            logger.info("background generation superseded", extra=extra)
            return Finished.SUPERSEDED
        with locks.Heartbeat(generation, lease_seconds=lease, clock=clock):
            generated, integrity = _generate_and_store(job, runtime, bucket, sleep)
    except Exception as exc:
        finished, failure = _failed(job, runtime, exc, clock)
        _announce(runtime, ended(outcome=Ended.FAILED, duration_ms=_ms(started), error=failure))
        if finished is None:
            raise  # a defect: let Lambda count it and send the event to the destination
        return finished
    metrics.add_metric(name="BackgroundGenerations", unit=MetricUnit.Count, value=1)
    stored = ended(
        outcome=Ended.STORED,
        duration_ms=_ms(started),
        object_key=generation.object_key,
        size=len(generated.data),
        digest=integrity.plain.digest,
    )
    _announce(runtime, stored)
    return Finished.STORED


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _announce(runtime: Runtime, ended: GenerationEnded) -> None:
    publish(lambda: runtime.events, runtime.settings.event_bus_name, ended)


def retry_delay(attempt: int) -> float:
    """How long to wait after failed attempt `attempt` (1, 2, ...): doubling, capped, jittered."""
    ceiling = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)


def _generate_and_store(
    job: BackgroundJob, runtime: Runtime, bucket: str, sleep: Callable[[float], None]
) -> tuple[Generated, Integrity]:
    """Generate, then upload; each step tried again while its dependency fails. An upload is
    retried with the same bytes, so a retry never writes other content under the same key."""
    request = job.request
    generated = _retrying(lambda: generate_file(request), sleep)
    integrity = _retrying(
        lambda: storage.upload(
            runtime.s3,
            bucket,
            job.generation,
            generated.data,
            content_type=request.content_type,
            shared=request.feed.shared,
            metadata=source_metadata(generated),
        ),
        sleep,
    )
    return generated, integrity


def _retrying(step: Callable[[], _T], sleep: Callable[[float], None]) -> _T:
    attempt = 1
    while True:
        try:
            return step()
        except Exception as exc:
            if not _dependency_failed(exc) or attempt >= RETRY_ATTEMPTS:
                raise
            delay = retry_delay(attempt)
            logger.warning(
                "a dependency failed; retrying",
                extra={"attempt": attempt, "retry_in_seconds": round(delay, 2)},
                exc_info=True,
            )
            metrics.add_metric(name="BackgroundRetries", unit=MetricUnit.Count, value=1)
            sleep(delay)
            attempt += 1


def _dependency_failed(error: Exception) -> bool:
    """An AWS outage or throttle, which retrying may outlast; a generator's own timeout is
    not one (it would only time out again)."""
    if isinstance(error, GenerationTimedOut):
        return False
    return isinstance(
        error, DependencyUnavailable | BotoCoreError | ClientError | PynamoDBException
    )


def _failed(
    job: BackgroundJob, runtime: Runtime, error: Exception, clock: Callable[[], float]
) -> tuple[Finished | None, str]:
    """Mark the lock with what failed, for as long as requests should report it; the
    outcome (None for a defect, which the caller re-raises so that Lambda sends the event
    to the dead-letter queue) and the failure's name."""
    settings = runtime.settings
    known = isinstance(error, OffloadError) and type(error).__name__ in FAILURES
    if _dependency_failed(error):
        failure, hold = DependencyUnavailable.__name__, float(settings.retry_after_seconds)
    else:
        failure = type(error).__name__ if known else GenerationFailed.__name__
        hold = settings.failed_generation_seconds
    logger.warning("background generation failed", extra={"failure": failure}, exc_info=error)
    metrics.add_metric(name="BackgroundFailures", unit=MetricUnit.Count, value=1)
    try:
        locks.fail(job.generation, failure, until=clock() + hold)
    except Exception:
        # DynamoDB is failing too: the lock's short lease runs out, and the next request
        # starts the generation again.
        logger.warning("could not mark the lock failed; its lease frees it", exc_info=True)
    if not known and not _dependency_failed(error):
        return None, failure
    return Finished.FAILED, failure
