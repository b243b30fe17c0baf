"""Serving a feed request: hit, miss or stale, with one generation per cache key at a time."""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from enum import StrEnum

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from offload import freshness, locks, storage
from offload.auth import Client
from offload.cachekey import FeedRequest, parse_feed_request
from offload.config import ConfigurationError
from offload.errors import (
    DependencyUnavailable,
    GenerationFailed,
    GenerationTimedOut,
    OffloadError,
)
from offload.feeds.base import GenerationRequest
from offload.feeds.registry import REGISTRY, FeedRegistry
from offload.models import CacheEntry
from offload.observability import logger, metrics
from offload.ratelimit import RateStatus, consume
from offload.runtime import Runtime

CACHE_STATUS_NAME = "Offload"
# Lock waiters poll the owner's object with capped exponential backoff.
POLL_BACKOFF = 1.5
MAX_POLL_SECONDS = 0.5
# Cache keys whose last object a container remembers for the speculative HEAD.
MAX_REMEMBERED = 10_000


class Outcome(StrEnum):
    """Offload's decision, as the parameters of its RFC 9211 `Cache-Status` entry."""

    HIT = "hit"
    # This request generated the file and stored it.
    STORED = "fwd=miss; stored"
    # It waited for the generation another request had started.
    COLLAPSED = "fwd=miss; collapsed"
    # The wait ran out: it generated a private copy, answered inline and not stored.
    PRIVATE = "fwd=miss"
    # Another request is rebuilding; an older file answers meanwhile.
    STALE = "hit; fwd=stale"
    # The rebuild failed; an older file answers (stale-if-error).
    STALE_ON_ERROR = "hit; fwd=stale; detail=error"

    @property
    def cache_status(self) -> str:
        """The `Cache-Status` entry; an edge in front appends its own after it."""
        return f"{CACHE_STATUS_NAME}; {self.value}"


@dataclass(frozen=True, slots=True)
class FeedAnswer:
    """Either a redirect to `location` or the generated `body` inline."""

    outcome: Outcome
    rate: RateStatus
    content_type: str
    location: str | None = None
    body: bytes | None = None


def new_generation_id(started_at: float) -> str:
    """Sortable by start time, unique across concurrent generations."""
    return f"{int(started_at * 1_000_000):016d}-{secrets.token_hex(4)}"


class FeedService:
    """Decides and serves one feed request; one instance per container."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        registry: FeedRegistry = REGISTRY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for feed in registry:
            if feed.generation_timeout_seconds >= runtime.settings.lock_lease_seconds:
                # A lease shorter than a generation would let a second one start meanwhile.
                raise ConfigurationError(
                    f"feed {feed.name!r} may generate for {feed.generation_timeout_seconds} s, "
                    f"longer than the {runtime.settings.lock_lease_seconds} s lock lease"
                )
        self._runtime = runtime
        self._registry = registry
        self._settings = runtime.settings
        self._clock = clock
        # The last object seen per cache key, HEADed speculatively in the first round so
        # a warm hit costs one parallel round of AWS calls.
        self._known: dict[str, str] = {}

    def serve(self, request: FeedRequest, client: Client) -> FeedAnswer:
        """Answer a validated request for an authenticated client; counts it against the limit."""
        pool = self._runtime.pool
        cache_id = request.cache_id
        guess = self._known.get(cache_id)
        rate = pool.submit(self._count, client)
        entry_future = pool.submit(freshness.read_entry, cache_id)
        coverage_future = pool.submit(freshness.read_coverage, request.feed.name, client.client_id)
        guessed_head = pool.submit(self._exists, guess) if guess else None

        status = rate.result()
        try:
            entry = entry_future.result()
            coverage = coverage_future.result()
            if entry is None:
                exists = False
            elif guessed_head is not None and entry.object_key == guess:
                exists = guessed_head.result()
            else:
                exists = self._exists(entry.object_key)
            return self._decide(request, status, entry, exists, coverage)
        except OffloadError as error:
            error.headers.update(status.headers())
            raise
        except (BotoCoreError, ClientError, PynamoDBException) as exc:
            raise DependencyUnavailable(
                "a backing service failed; retry shortly", headers=status.headers()
            ) from exc

    def handle(self, file: str, raw_query: str, client: Client) -> FeedAnswer:
        """Validate `/feeds/{file}?{raw_query}` and serve it; invalid requests count too."""
        try:
            request = parse_feed_request(file, raw_query, client.client_id, self._registry)
        except OffloadError as error:
            # Metered like anything else, so junk cannot be sent for free.
            status = self._count(client)
            error.headers.update(status.headers())
            raise
        return self.serve(request, client)

    def _count(self, client: Client) -> RateStatus:
        return consume(client, window_seconds=self._settings.rate_limit_window, now=self._clock())

    def _decide(
        self,
        request: FeedRequest,
        rate: RateStatus,
        entry: CacheEntry | None,
        exists: bool,
        coverage: freshness.Coverage,
    ) -> FeedAnswer:
        now = self._clock()
        state = freshness.judge(
            entry, exists=exists, coverage=coverage, max_age=request.feed.max_age_seconds, now=now
        )
        if entry is not None and state is not freshness.State.UNUSABLE:
            self._remember(request.cache_id, entry.object_key)
        if state is freshness.State.FRESH and entry is not None:
            metrics.add_metric(name="Hits", unit=MetricUnit.Count, value=1)
            return self._redirect(Outcome.HIT, rate, request, entry.object_key)
        stale = entry.object_key if state is freshness.State.STALE and entry else None
        seen = entry.object_key if entry is not None else None
        return self._rebuild(request, rate, coverage, stale, seen, now)

    def _rebuild(
        self,
        request: FeedRequest,
        rate: RateStatus,
        coverage: freshness.Coverage,
        stale: str | None,
        seen: str | None,
        now: float,
    ) -> FeedAnswer:
        generation_id = new_generation_id(now)
        candidate = locks.Lease(
            owner=generation_id,
            object_key=request.object_key(generation_id),
            started_at=now,
            lease_until=now + self._settings.lock_lease_seconds,
        )
        taken = locks.acquire(
            self._runtime.dynamodb,
            request.cache_id,
            candidate,
            now=now,
            superseded_before=coverage.latest,
        )
        if taken.acquired:
            recorded = self._recorded_since(request, coverage, seen)
            if recorded is not None:
                locks.release(request.cache_id, candidate.owner)
                metrics.add_metric(name="Hits", unit=MetricUnit.Count, value=1)
                return self._redirect(Outcome.HIT, rate, request, recorded)
            return self._generate_as_owner(request, rate, candidate, stale)
        if stale:
            metrics.add_metric(name="Stale", unit=MetricUnit.Count, value=1)
            return self._redirect(Outcome.STALE, rate, request, stale)
        if taken.lease is not None and self._wait_for(taken.lease.object_key, request):
            return self._redirect(Outcome.COLLAPSED, rate, request, taken.lease.object_key)
        # The owner is slow: answer from a private generation rather than not at all.
        logger.info("lock wait ran out; generating without the lock")
        data = self._generate(request)
        if len(data) <= self._settings.inline_limit_bytes:
            metrics.add_metric(name="Misses", unit=MetricUnit.Count, value=1)
            return FeedAnswer(Outcome.PRIVATE, rate, request.content_type, body=data)
        return self._store_and_answer(request, rate, candidate, data)

    def _recorded_since(
        self, request: FeedRequest, coverage: freshness.Coverage, seen: str | None
    ) -> str | None:
        """A fresh object recorded after our first read, if any.

        The recorder releases the lock right after moving the entry, so a request that read
        the old entry can take the lock just after a generation finished; one more read
        stops it from generating the same file again.
        """
        entry = freshness.read_entry(request.cache_id)
        if entry is None or entry.object_key == seen:
            return None
        state = freshness.judge(
            entry,
            exists=self._exists(entry.object_key),
            coverage=coverage,
            max_age=request.feed.max_age_seconds,
            now=self._clock(),
        )
        return entry.object_key if state is freshness.State.FRESH else None

    def _generate_as_owner(
        self, request: FeedRequest, rate: RateStatus, lease: locks.Lease, stale: str | None
    ) -> FeedAnswer:
        try:
            data = self._generate(request)
            return self._store_and_answer(request, rate, lease, data)
        except Exception:
            # The recorder releases the lock once the upload lands; on failure, we do.
            locks.release(request.cache_id, lease.owner)
            if stale:
                logger.warning("rebuild failed; serving the stale file", exc_info=True)
                metrics.add_metric(name="StaleOnError", unit=MetricUnit.Count, value=1)
                return self._redirect(Outcome.STALE_ON_ERROR, rate, request, stale)
            raise

    def _store_and_answer(
        self, request: FeedRequest, rate: RateStatus, lease: locks.Lease, data: bytes
    ) -> FeedAnswer:
        storage.upload(
            self._runtime.s3,
            self._settings.bucket_name,
            lease.object_key,
            data,
            content_type=request.content_type,
            cache_id=request.cache_id,
            generation_id=lease.owner,
            generated_at=lease.started_at,
        )
        self._remember(request.cache_id, lease.object_key)
        metrics.add_metric(name="Misses", unit=MetricUnit.Count, value=1)
        if len(data) <= self._settings.inline_limit_bytes:
            return FeedAnswer(Outcome.STORED, rate, request.content_type, body=data)
        return self._redirect(Outcome.STORED, rate, request, lease.object_key)

    def _generate(self, request: FeedRequest) -> bytes:
        feed = request.feed
        started = time.perf_counter()
        job = GenerationRequest(
            feed=feed.name,
            format=request.format,
            client_id=request.client_id,
            params=dict(request.params),
        )
        try:
            data = _run_with_timeout(feed.generate, job, feed.generation_timeout_seconds)
        except FutureTimeout as exc:
            raise GenerationTimedOut(
                f"feed {feed.name!r} took longer than {feed.generation_timeout_seconds} s"
            ) from exc
        except OffloadError:
            raise
        except Exception as exc:
            logger.exception("generator failed", extra={"feed": feed.name})
            raise GenerationFailed(f"feed {feed.name!r} could not be generated") from exc
        metrics.add_metric(
            name="GenerationTime",
            unit=MetricUnit.Milliseconds,
            value=(time.perf_counter() - started) * 1000,
        )
        return data

    def _wait_for(self, object_key: str, request: FeedRequest) -> bool:
        """Poll for the lock owner's upload for a bounded time."""
        metrics.add_metric(name="LockWaits", unit=MetricUnit.Count, value=1)
        deadline = time.monotonic() + min(
            self._settings.lock_wait_seconds, request.feed.generation_timeout_seconds
        )
        delay = self._settings.lock_poll_seconds
        while True:
            if self._exists(object_key):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # Backing off keeps a herd of waiters from HEADing the key hundreds of times a
            # second; jitter keeps them from doing it in step.
            time.sleep(min(remaining, delay * random.uniform(0.5, 1.0)))
            delay = min(delay * POLL_BACKOFF, MAX_POLL_SECONDS)

    def _remember(self, cache_id: str, object_key: str) -> None:
        if len(self._known) >= MAX_REMEMBERED and cache_id not in self._known:
            self._known.clear()  # a rare cold round beats unbounded memory
        self._known[cache_id] = object_key

    def _exists(self, object_key: str) -> bool:
        return storage.object_exists(self._runtime.s3, self._settings.bucket_name, object_key)

    def _redirect(
        self, outcome: Outcome, rate: RateStatus, request: FeedRequest, object_key: str
    ) -> FeedAnswer:
        return FeedAnswer(
            outcome,
            rate,
            request.content_type,
            location=self._runtime.signer.sign(object_key),
        )


def _run_with_timeout(
    fn: Callable[[GenerationRequest], bytes], job: GenerationRequest, timeout: float
) -> bytes:
    """Run a generator in its own thread so a slow one can be abandoned at the deadline."""
    result: Future[bytes] = Future()

    def target() -> None:
        try:
            result.set_result(fn(job))
        except BaseException as exc:  # handed to the caller through the future
            result.set_exception(exc)

    threading.Thread(target=target, name="offload-generator", daemon=True).start()
    return result.result(timeout=timeout)
