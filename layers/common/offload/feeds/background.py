"""Generations too long for API Gateway: a request starts one, the generator function runs it.

The request that takes the rebuild lock invokes the generator function asynchronously
(Lambda's `Event` invocation) with a `BackgroundJob` and answers at once; the function
generates and uploads, and the recorder moves the cache entry and releases the lock as it
does for any upload. A failure marks the lock instead, so requests report it until its
lease runs out rather than start the same doomed generation again at once.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from offload import locks, storage
from offload.config import Settings
from offload.errors import (
    DependencyUnavailable,
    GenerationFailed,
    GenerationTimedOut,
    OffloadError,
)
from offload.feeds.base import lease_seconds
from offload.feeds.cachekey import FeedRequest
from offload.feeds.events import Ended, GenerationEnded, publish
from offload.feeds.generation import Generation
from offload.feeds.generator import generate_file, source_metadata
from offload.feeds.registry import FeedRegistry
from offload.observability import logger, metrics
from offload.runtime import Runtime, client_config

# Names an event as a background generation, so nothing else is taken for one.
KIND = "offload.feeds.generate"
# What a failed generation is remembered as, and the error requests answer with meanwhile.
FAILURES: dict[str, type[OffloadError]] = {
    error.__name__: error for error in (GenerationFailed, GenerationTimedOut, DependencyUnavailable)
}

Launch = Callable[["BackgroundJob"], None]


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
    job: BackgroundJob, runtime: Runtime, *, clock: Callable[[], float] = time.time
) -> Finished:
    """Generate and store the job's file if its generation still holds the lock."""
    generation, request = job.generation, job.request
    bucket = runtime.settings.bucket_name
    if bucket is None:
        raise ValueError("background generations are stored in a bucket; none is configured")
    # Lambda delivers an event at least once: a repeat finds the file stored (and the lock
    # still held until the recorder sees the upload) and must not generate it again.
    if storage.object_exists(runtime.s3, bucket, generation.object_key) or not locks.renew(
        generation, until=clock() + lease_seconds(request.feed, runtime.settings)
    ):
        logger.info("background generation superseded", extra={"object_key": generation.object_key})
        return Finished.SUPERSEDED
    started = time.monotonic()
    ended = partial(
        GenerationEnded,
        feed=request.feed.name,
        format=request.format,
        client=request.client_id,
        generation_id=generation.id,
    )
    try:
        generated = generate_file(request)
        storage.upload(
            runtime.s3,
            bucket,
            generation,
            generated.data,
            content_type=request.content_type,
            shared=request.feed.shared,
            metadata=source_metadata(generated),
        )
    except Exception as exc:
        known = isinstance(exc, OffloadError) and type(exc).__name__ in FAILURES
        failure = type(exc).__name__ if known else GenerationFailed.__name__
        logger.warning("background generation failed", exc_info=True)
        metrics.add_metric(name="BackgroundFailures", unit=MetricUnit.Count, value=1)
        locks.fail(generation, failure, until=clock() + runtime.settings.lock_lease_seconds)
        _announce(runtime, ended(outcome=Ended.FAILED, duration_ms=_ms(started), error=failure))
        if not known:
            raise  # a defect: let Lambda count it and send the event to the destination
        return Finished.FAILED
    metrics.add_metric(name="BackgroundGenerations", unit=MetricUnit.Count, value=1)
    stored = ended(
        outcome=Ended.STORED,
        duration_ms=_ms(started),
        object_key=generation.object_key,
        size=len(generated.data),
    )
    _announce(runtime, stored)
    return Finished.STORED


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _announce(runtime: Runtime, ended: GenerationEnded) -> None:
    publish(lambda: runtime.events, runtime.settings.event_bus_name, ended)
