"""Rebuild locks: a conditional write with a lease; only the owner may release its lock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DeleteError

from offload.models import RebuildLock, condition_failed

# DynamoDB's TTL sweeps expired leases some time after they run out; the condition,
# not the sweep, decides who may take a lock.
TTL_GRACE_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class Lease:
    """Who is generating which object for a cache key, since when, until when."""

    owner: str
    object_key: str
    started_at: float
    lease_until: float


@dataclass(frozen=True, slots=True)
class Acquisition:
    """The outcome of trying to take a lock: ours, or the holder's lease."""

    acquired: bool
    lease: Lease | None


def acquire(
    dynamodb: Any, cache_id: str, candidate: Lease, *, now: float, superseded_before: float
) -> Acquisition:
    """Take the lock if it is free, its lease ran out, or its generation began no later
    than `superseded_before` (an invalidation made that generation useless).

    One conditional put; on failure DynamoDB returns the holder's item, so no extra read.
    """
    item = RebuildLock(
        RebuildLock.key_for(cache_id),
        RebuildLock.SORT,
        owner=candidate.owner,
        object_key=candidate.object_key,
        started_at=candidate.started_at,
        lease_until=candidate.lease_until,
        expires_at=datetime.fromtimestamp(candidate.lease_until + TTL_GRACE_SECONDS, tz=UTC),
    )
    try:
        dynamodb.put_item(
            TableName=RebuildLock.Meta.table_name,
            Item=item.serialize(),
            ConditionExpression=(
                "attribute_not_exists(#pk) OR #lease < :now OR #started <= :superseded"
            ),
            ExpressionAttributeNames={
                "#pk": "pk",
                "#lease": "lease_until",
                "#started": "started_at",
            },
            ExpressionAttributeValues={
                ":now": {"N": repr(now)},
                ":superseded": {"N": repr(superseded_before)},
            },
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except dynamodb.exceptions.ConditionalCheckFailedException as exc:
        raw = exc.response.get("Item")
        if raw is None:
            return Acquisition(acquired=False, lease=current(cache_id))
        return Acquisition(acquired=False, lease=_lease(RebuildLock.from_raw_data(raw)))
    return Acquisition(acquired=True, lease=candidate)


def current(cache_id: str) -> Lease | None:
    """The lease held on `cache_id`, if any (expired or not)."""
    try:
        lock = RebuildLock.get(
            RebuildLock.key_for(cache_id), RebuildLock.SORT, consistent_read=True
        )
    except RebuildLock.DoesNotExist:
        return None
    return _lease(lock)


def release(cache_id: str, owner: str) -> bool:
    """Drop the lock only if `owner` still holds it; True when it did."""
    try:
        RebuildLock(RebuildLock.key_for(cache_id), RebuildLock.SORT).delete(
            condition=RebuildLock.owner == owner
        )
    except DeleteError as exc:
        if not condition_failed(exc):
            raise
        return False
    return True


def _lease(lock: RebuildLock) -> Lease:
    return Lease(
        owner=lock.owner,
        object_key=lock.object_key,
        started_at=float(lock.started_at),
        lease_until=float(lock.lease_until),
    )
