"""Rebuild locks: a conditional write with a lease; only the owner may release its lock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from pynamodb.exceptions import DeleteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from offload.files import Generation
from offload.observability import logger
from offload.table import RebuildLock, condition_failed, put_unless

# DynamoDB's TTL sweeps expired leases some time after they run out; the condition,
# not the sweep, decides who may take a lock.
TTL_GRACE_SECONDS = 3600
# An owner renews its lease this many times per lease: two renewals may fail (a DynamoDB
# blip) before the lease runs out under a live owner.
BEATS_PER_LEASE = 3


@dataclass(frozen=True, slots=True)
class Lease:
    """Which generation holds the lock on its cache key, and until when."""

    generation: Generation
    lease_until: float
    # Why the holder's background generation failed; requests report it until the lease ends.
    failure: str | None = None


@dataclass(frozen=True, slots=True)
class Acquisition:
    """The outcome of trying to take a lock: ours, or the holder's lease."""

    acquired: bool
    lease: Lease | None


def free() -> Condition:
    """Nobody has held the lock, or its holder released it."""
    return RebuildLock.pk.does_not_exist()


def ran_out(now: float) -> Condition:
    """The holder's lease is over: it crashed, or its upload was never recorded."""
    return RebuildLock.lease_until <= now


def superseded(before: float) -> Condition:
    """The holder's generation began no later than an invalidation, which made it useless."""
    return RebuildLock.started_at <= before


def acquire(
    dynamodb: Any, candidate: Lease, *, now: float, superseded_before: float
) -> Acquisition:
    """Take the lock if it is free, its lease ran out or its generation was superseded."""
    generation = candidate.generation
    item = RebuildLock(
        RebuildLock.key_for(generation.cache_id),
        RebuildLock.SORT,
        owner=generation.owner,
        object_key=generation.object_key,
        started_at=generation.started_at,
        lease_until=candidate.lease_until,
        expires_at=datetime.fromtimestamp(candidate.lease_until + TTL_GRACE_SECONDS, tz=UTC),
    )
    holder = put_unless(dynamodb, item, free() | ran_out(now) | superseded(superseded_before))
    if holder is None:
        return Acquisition(acquired=True, lease=candidate)
    return Acquisition(acquired=False, lease=_lease(generation.cache_id, holder))


def current(cache_id: str) -> Lease | None:
    """The lease held on `cache_id`, if any (expired or not)."""
    try:
        lock = RebuildLock.get(
            RebuildLock.key_for(cache_id), RebuildLock.SORT, consistent_read=True
        )
    except RebuildLock.DoesNotExist:
        return None
    return _lease(cache_id, lock)


def release(generation: Generation) -> bool:
    """Drop the lock only if `generation` still holds it; True when it did."""
    try:
        RebuildLock(RebuildLock.key_for(generation.cache_id), RebuildLock.SORT).delete(
            condition=RebuildLock.owner == generation.owner
        )
    except DeleteError as exc:
        if not condition_failed(exc):
            raise
        return False
    return True


def renew(generation: Generation, *, until: float) -> bool:
    """Extend `generation`'s lease to `until` if it still holds the lock and has not failed.

    Its owner's `Heartbeat` calls it while it works. A lock marked failed is not renewed:
    a job Lambda delivers again must not run a failed generation once more.
    """
    expires = datetime.fromtimestamp(until + TTL_GRACE_SECONDS, tz=UTC)
    return _update_held(
        generation,
        [RebuildLock.lease_until.set(until), RebuildLock.expires_at.set(expires)],
        also=RebuildLock.failure.does_not_exist(),
    )


def fail(generation: Generation, failure: str, *, until: float) -> bool:
    """Keep the lock, marked failed, until `until`; True when `generation` still held it.

    Requests then report the failure instead of starting the same doomed generation again
    at once; when the lease runs out, the next request tries again.
    """
    return _update_held(
        generation, [RebuildLock.failure.set(failure), RebuildLock.lease_until.set(until)]
    )


def _update_held(
    generation: Generation, actions: list[Action], *, also: Condition | None = None
) -> bool:
    """Apply `actions` to the lock only while `generation` holds it; True when it did."""
    held = RebuildLock.owner == generation.owner
    try:
        RebuildLock(RebuildLock.key_for(generation.cache_id), RebuildLock.SORT).update(
            actions=actions, condition=held if also is None else held & also
        )
    except UpdateError as exc:
        if not condition_failed(exc):
            raise
        return False
    return True


def _lease(cache_id: str, lock: RebuildLock) -> Lease:
    generation = Generation(id=lock.owner, cache_id=cache_id, object_key=lock.object_key)
    return Lease(generation=generation, lease_until=float(lock.lease_until), failure=lock.failure)


class Heartbeat:
    """Renews a held lease while its owner works, every `lease_seconds / BEATS_PER_LEASE`.

    The lease is short, so a lock whose owner is gone (crashed, or cut off from DynamoDB
    when it would release) is free within seconds; a live owner keeps it however long it
    works. Renewal stops when the block ends, or once the lock is no longer the owner's.

        with Heartbeat(generation, lease_seconds=6, clock=time.time):
            generate_and_upload()
    """

    def __init__(
        self,
        generation: Generation,
        *,
        lease_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._generation = generation
        self._lease_seconds = lease_seconds
        self._clock = clock
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        return self._lease_seconds / BEATS_PER_LEASE

    def beat(self) -> bool:
        """Renew once; False when the lock is no longer held (stop renewing), True otherwise.

        A renewal that fails keeps the heartbeat going: the next one may get through
        before the lease runs out.
        """
        try:
            return renew(self._generation, until=self._clock() + self._lease_seconds)
        except Exception:
            logger.warning("could not renew the rebuild lock", exc_info=True)
            return True

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name="offload-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            if not self.beat():
                return
