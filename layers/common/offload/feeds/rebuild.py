"""The rebuild lock protocol: take the lock, read again, generate and upload; or wait."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from aws_lambda_powertools.metrics import MetricUnit

from offload import freshness, locks, storage
from offload.feeds.background_build import BackgroundJob, Launch, failure_of
from offload.feeds.build import generate, generate_file, source_metadata
from offload.feeds.cachekey import FeedRequest
from offload.feeds.decision import Hit, Rebuild, decide
from offload.feeds.delivery import sent_as_text
from offload.feeds.outcome import Outcome, Served
from offload.feeds.plugin import Generated, Unchanged, lease_seconds
from offload.files import Generation
from offload.observability import logger, metrics
from offload.runtime import Runtime

# Lock waiters poll the owner's object with capped exponential backoff.
POLL_BACKOFF = 1.5
MAX_POLL_SECONDS = 0.5


class Rebuilder:
    """Generates a cache key's file at most once at a time, however many requests want it."""

    def __init__(
        self,
        runtime: Runtime,
        bucket: str,
        *,
        exists: Callable[[str], bool],
        clock: Callable[[], float],
        launch: Launch,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`clock` tells the time leases and waits are measured in, `sleep` waits in it."""
        self._runtime = runtime
        self._bucket = bucket
        self._settings = runtime.settings
        self._exists = exists
        self._clock = clock
        self._launch = launch
        self._sleep = sleep

    def rebuild(
        self,
        request: FeedRequest,
        coverage: freshness.Coverage,
        plan: Rebuild,
        *,
        inline: bool = True,
    ) -> Served:
        """The lock's owner generates; others answer stale, wait for it, or (late) go alone.

        `inline`: a file small enough may be answered as bytes; without it, every answer
        is a stored object (a client asking for a link needs a URL).
        """
        now = self._clock()
        generation = Generation.start(request, now)
        taken = self._acquire(request, generation, coverage, now)
        if taken.acquired:
            return self._as_owner(request, generation, coverage, plan, inline)
        if request.feed.in_background:
            return self._await_background(taken.lease, plan.stale)
        if plan.stale:
            metrics.add_metric(name="Stale", unit=MetricUnit.Count, value=1)
            return Served(Outcome.STALE, plan.stale)
        metrics.add_metric(name="LockWaits", unit=MetricUnit.Count, value=1)
        deadline = now + min(
            self._settings.lock_wait_seconds, request.feed.generation_timeout_seconds
        )
        holder = taken.lease
        while holder is not None:
            if self._wait_for(holder, deadline):
                return Served(Outcome.COLLAPSED, holder.generation.object_key)
            if self._clock() < holder.lease_until:  # our wait ran out, not the lease
                break
            # The holder's lease ran out: its owner is gone, since a live one renews it.
            # One waiter takes the lock over and generates; the others wait for that one.
            now = self._clock()
            generation = Generation.start(request, now)
            taken = self._acquire(request, generation, coverage, now)
            if taken.acquired:
                logger.info("took over a lock whose owner is gone")
                return self._as_owner(request, generation, coverage, plan, inline)
            holder = taken.lease
        # The owner is slow: answer from a private generation rather than not at all.
        logger.info("lock wait ran out; generating without the lock")
        generated = generate_file(request)
        if self._fits_inline(request, generated.data, inline):
            metrics.add_metric(name="Misses", unit=MetricUnit.Count, value=1)
            return Served(Outcome.PRIVATE, body=generated.data)
        return self._store(request, generation, generated, inline)

    def _fits_inline(self, request: FeedRequest, data: bytes, inline: bool) -> bool:
        """Whether the file may be the answer's body: asked for, small, and text (anything
        else goes out base64-encoded, a third larger: it is stored and redirected to)."""
        return (
            inline
            and sent_as_text(request.content_type)
            and len(data) <= self._settings.inline_limit_bytes
        )

    def _acquire(
        self,
        request: FeedRequest,
        generation: Generation,
        coverage: freshness.Coverage,
        now: float,
    ) -> locks.Acquisition:
        """Take the lock for `generation`, or learn who holds it."""
        lease = now + lease_seconds(request.feed, self._settings)
        return locks.acquire(
            self._runtime.dynamodb,
            locks.Lease(generation, lease_until=lease),
            now=now,
            superseded_before=coverage.latest,
        )

    def _as_owner(
        self,
        request: FeedRequest,
        generation: Generation,
        coverage: freshness.Coverage,
        plan: Rebuild,
        inline: bool,
    ) -> Served:
        recorded = self._recorded_since(request, coverage, plan.seen)
        if recorded is not None:
            locks.release(generation)
            metrics.add_metric(name="Hits", unit=MetricUnit.Count, value=1)
            return Served(Outcome.HIT, recorded)
        if request.feed.in_background:
            return self._start_in_background(BackgroundJob(request, generation), plan.stale)
        return self._generate_as_owner(request, generation, plan, inline)

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
        decision = decide(
            entry,
            exists=self._exists(entry.object_key),
            coverage=coverage,
            feed=request.feed,
            now=self._clock(),
        )
        return decision.object_key if isinstance(decision, Hit) else None

    def _start_in_background(self, job: BackgroundJob, stale: str | None) -> Served:
        """Hand the generation to the generator function; answer stale or pending meanwhile."""
        try:
            self._launch(job)
        except Exception:
            self._release(job.generation)
            if stale:
                logger.warning("could not start the rebuild; serving the stale file", exc_info=True)
                metrics.add_metric(name="StaleOnError", unit=MetricUnit.Count, value=1)
                return Served(Outcome.STALE_ON_ERROR, stale)
            raise
        metrics.add_metric(name="BackgroundStarts", unit=MetricUnit.Count, value=1)
        return Served(Outcome.STALE, stale) if stale else Served(Outcome.PENDING)

    def _await_background(self, lease: locks.Lease | None, stale: str | None) -> Served:
        """Another request started the generation: nothing to wait for within a request."""
        if lease is not None and lease.failure:
            if stale:
                metrics.add_metric(name="StaleOnError", unit=MetricUnit.Count, value=1)
                return Served(Outcome.STALE_ON_ERROR, stale)
            raise failure_of(lease, self._clock())
        if stale:
            metrics.add_metric(name="Stale", unit=MetricUnit.Count, value=1)
            return Served(Outcome.STALE, stale)
        return Served(Outcome.PENDING)

    def _release(self, generation: Generation) -> None:
        # If releasing fails too, the lease frees the lock: the first error is the news.
        try:
            locks.release(generation)
        except Exception:
            logger.warning("could not release the rebuild lock", exc_info=True)

    def _generate_as_owner(
        self, request: FeedRequest, generation: Generation, plan: Rebuild, inline: bool
    ) -> Served:
        stale = plan.stale
        heartbeat = locks.Heartbeat(
            generation, lease_seconds=self._settings.lock_lease_seconds, clock=self._clock
        )
        try:
            with heartbeat:
                result = generate(request, plan.previous)
                if isinstance(result, Unchanged) and stale is not None:
                    return self._renew(request, generation, stale)
                assert isinstance(result, Generated), "unchanged only with a stale file to renew"
                return self._store(request, generation, result, inline)
        except Exception:
            # The recorder releases the lock once the upload lands; on failure, we do.
            self._release(generation)
            if stale:
                logger.warning("rebuild failed; serving the stale file", exc_info=True)
                metrics.add_metric(name="StaleOnError", unit=MetricUnit.Count, value=1)
                return Served(Outcome.STALE_ON_ERROR, stale)
            raise

    def _renew(self, request: FeedRequest, generation: Generation, current: str) -> Served:
        """The source said the current file is still right: its age starts again from when
        we asked, no copy is stored, and the lock (no upload will release it) is ours to free."""
        freshness.renew_entry(request.cache_id, current, at=generation.started_at)
        self._release(generation)
        metrics.add_metric(name="Revalidations", unit=MetricUnit.Count, value=1)
        return Served(Outcome.REVALIDATED, current)

    def _store(
        self, request: FeedRequest, generation: Generation, generated: Generated, inline: bool
    ) -> Served:
        data = generated.data
        integrity = storage.upload(
            self._runtime.s3,
            self._bucket,
            generation,
            data,
            content_type=request.content_type,
            shared=request.feed.shared,
            metadata=source_metadata(generated),
        )
        metrics.add_metric(name="Misses", unit=MetricUnit.Count, value=1)
        body = data if self._fits_inline(request, data, inline) else None
        return Served(
            Outcome.STORED, generation.object_key, body=body, size=len(data), integrity=integrity
        )

    def _wait_for(self, holder: locks.Lease, deadline: float) -> bool:
        """Poll for the holder's upload until it lands (True), or until the holder's lease
        or our wait runs out (False)."""
        delay = self._settings.lock_poll_seconds
        while True:
            if self._exists(holder.generation.object_key):
                return True
            remaining = min(deadline, holder.lease_until) - self._clock()
            if remaining <= 0:
                return False
            # Backing off keeps a herd of waiters from HEADing the key hundreds of times a
            # second; jitter keeps them from doing it in step.
            self._sleep(min(remaining, delay * random.uniform(0.5, 1.0)))
            delay = min(delay * POLL_BACKOFF, MAX_POLL_SECONDS)
