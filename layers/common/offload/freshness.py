"""Whether a generated file may be served: invalidation coverage, age and existence."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pynamodb.exceptions import UpdateError

from offload.errors import DependencyUnavailable
from offload.invalidation_scopes import Scope
from offload.table import (
    CacheEntry,
    Invalidation,
    condition_failed,
    dynamodb_client,
    item_key,
    table_name,
)

# The times a coverage read needs, by their stored names.
_HARD, _SOFT = Invalidation.hard_at.attr_name, Invalidation.soft_at.attr_name
_TIMES = {
    "ProjectionExpression": "#hard, #soft",
    "ExpressionAttributeNames": {"#hard": _HARD, "#soft": _SOFT},
}
MAX_BATCH_ATTEMPTS = 4
UNPROCESSED_BACKOFF_SECONDS = 0.05


class State(Enum):
    """What a cache entry is good for."""

    FRESH = "fresh"
    STALE = "stale"  # usable while a rebuild runs, or if it fails
    UNUSABLE = "unusable"  # absent, gone from S3, or generated before a hard invalidation


@dataclass(frozen=True, slots=True)
class Coverage:
    """The latest hard and soft invalidations over every scope covering a request."""

    hard_at: float = 0.0
    soft_at: float = 0.0

    @property
    def latest(self) -> float:
        return max(self.hard_at, self.soft_at)


def pick_shard(shards: int) -> int:
    """The shard a request reads, at random: each item of a scope gets 1/N of its reads."""
    return random.randrange(shards)


def read_coverage(feed: str, owner: str) -> Coverage:
    """One strongly consistent batch read of the three scopes, one shard of each.

    An invalidation writes every shard of its scope in one transaction, so any shard read
    after it committed holds it, and a hot scope's reads (`global`'s above all: every
    request reads it) are spread over all its items.
    """
    shard = pick_shard(Invalidation.shards())
    table = table_name()
    keys = [
        item_key(Invalidation.key_for(scope.key, shard), Invalidation.SORT)
        for scope in Scope.covering(feed, owner)
    ]
    wanted: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True, **_TIMES}}
    hard = soft = 0.0
    # Every request makes this read, so it goes through botocore as is (PynamoDB's model
    # per item cost about 0.05 ms a request, bench/cpu.py). DynamoDB may leave keys
    # unprocessed when throttled: they are asked for again, a bounded number of times.
    for attempt in range(MAX_BATCH_ATTEMPTS):
        answer = dynamodb_client().batch_get_item(RequestItems=wanted)
        for item in answer.get("Responses", {}).get(table, []):
            hard = max(hard, float(item.get(_HARD, {}).get("N", 0)))
            soft = max(soft, float(item.get(_SOFT, {}).get("N", 0)))
        wanted = answer.get("UnprocessedKeys") or {}
        if not wanted:
            return Coverage(hard_at=hard, soft_at=soft)
        time.sleep(UNPROCESSED_BACKOFF_SECONDS * 2**attempt)
    raise DependencyUnavailable("DynamoDB left invalidations unread; retry shortly")


def read_entry(cache_id: str) -> CacheEntry | None:
    """The cache entry for `cache_id`, read strongly consistent, or None."""
    try:
        return CacheEntry.get(CacheEntry.key_for(cache_id), CacheEntry.SORT, consistent_read=True)
    except CacheEntry.DoesNotExist:
        return None


def judge(
    entry: CacheEntry | None,
    *,
    exists: bool,
    coverage: Coverage,
    max_age: float,
    now: float,
) -> State:
    """Fresh, stale or unusable. Compares the generation *start* with invalidation times."""
    if entry is None or not exists:
        return State.UNUSABLE
    generated_at = float(entry.generated_at)
    if generated_at <= coverage.hard_at:
        return State.UNUSABLE
    # A renewal (the source said "not modified") restarts the age, never the invalidations.
    aged_from = max(generated_at, float(entry.renewed_at or 0))
    if generated_at <= coverage.soft_at or now - aged_from >= max_age:
        return State.STALE
    return State.FRESH


def renew_entry(cache_id: str, object_key: str, *, at: float) -> bool:
    """Count the entry's file as fresh from `at`, if the entry still names `object_key`;
    True when it did. Never moves a renewal back."""
    entry = CacheEntry(CacheEntry.key_for(cache_id), CacheEntry.SORT)
    try:
        entry.update(
            actions=[CacheEntry.renewed_at.set(at)],
            condition=(CacheEntry.object_key == object_key)
            & (CacheEntry.renewed_at.does_not_exist() | (CacheEntry.renewed_at < at)),
        )
    except UpdateError as exc:
        if not condition_failed(exc):
            raise
        return False
    return True
