"""Invalidations: parsing requests and recording the time that makes older files unusable."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pynamodb.attributes import NumberAttribute
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from offload.collections import REGISTRY as COLLECTIONS
from offload.collections import CollectionRef
from offload.collections.store import CollectionStore
from offload.errors import DependencyUnavailable, InvalidRequest, NotFound
from offload.feeds import REGISTRY as FEEDS
from offload.feeds.plugin import SLUG
from offload.invalidation_scopes import Kind, Scope
from offload.table import Invalidation, cause_code, shared_connection

# The request field that names each kind of scope.
FIELDS = {"scope": Kind.GLOBAL, "feed": Kind.FEED, "client": Kind.CLIENT}
CANCELLED = "TransactionCanceledException"
# Why DynamoDB cancels a shard's write, of those that are no failure: the shard holds a
# later time (kept: done), or another transaction had the item (a concurrent invalidation
# of the scope: write it again). Anything else, a throttle above all, is a real failure.
KEPT_LATER = "ConditionalCheckFailed"
COLLIDED = "TransactionConflict"
# Only concurrent invalidations of one scope collide; each loses at most once per winner.
MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 0.02
BACKOFF_CAP_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class FeedInvalidation:
    """An invalidation of feed files: global, one feed, or one client."""

    scope: Scope
    soft: bool = False

    def describe(self) -> dict[str, Any]:
        return {**self.scope.describe(), "soft": self.soft}


@dataclass(frozen=True, slots=True)
class CollectionInvalidation:
    """A collection whose pointer moves to a new version with a fresh snapshot."""

    ref: CollectionRef

    def describe(self) -> dict[str, Any]:
        return {"collection": self.ref.path}


def parse_invalidation(body: dict[str, Any]) -> FeedInvalidation | CollectionInvalidation:
    """A feed invalidation, or exactly `{"collection": "users/42/matches"}`."""
    if "collection" not in body:
        return parse_feed_invalidation(body)
    others = sorted(set(body) - {"collection"})
    if others:
        raise InvalidRequest(f'"collection" takes no other fields, got {", ".join(others)}')
    return CollectionInvalidation(COLLECTIONS.resolve(body["collection"]))


def parse_feed_invalidation(body: dict[str, Any]) -> FeedInvalidation:
    """Exactly one of `{"scope": "global"}`, `{"feed": F}`, `{"client": C}`, plus `soft`."""
    given = [field for field in FIELDS if field in body]
    unknown = set(body) - {*FIELDS, "soft"}
    if unknown:
        raise InvalidRequest(f"unknown fields: {', '.join(sorted(unknown))}")
    if len(given) != 1:
        raise InvalidRequest('give exactly one of "scope", "feed", "client" or "collection"')
    soft = body.get("soft", False)
    if not isinstance(soft, bool):
        raise InvalidRequest('"soft" must be true or false')
    field = given[0]
    kind, value = FIELDS[field], body[field]
    if kind is Kind.GLOBAL:
        if value != Kind.GLOBAL:
            raise InvalidRequest(f'"scope" can only be "{Kind.GLOBAL}"')
        return FeedInvalidation(Scope.everything(), soft)
    if not isinstance(value, str) or not SLUG.fullmatch(value):
        raise InvalidRequest(f'"{field}" must be a lower-case name')
    if kind is Kind.FEED and FEEDS.get(value) is None:
        # A typo would otherwise invalidate nothing and say it had.
        raise NotFound(f"there is no feed {value!r}; `offload feeds list` names them")
    return FeedInvalidation(Scope(kind, value), soft)


def invalidate(request: FeedInvalidation, *, now: float) -> float:
    """Record the invalidation at `now` in every shard of its scope; a later one already
    recorded is kept."""
    attribute = Invalidation.soft_at if request.soft else Invalidation.hard_at
    record(request.scope.key, attribute, now)
    return now


def record(scope: str, attribute: NumberAttribute, at: float) -> None:
    """Set `attribute` to `at` in each shard of `scope` that holds no later time.

    A feed request reads one shard at random, so a hard invalidation is exact only once all
    of them hold it: they are written in one transaction, and any shard read after it
    committed has it. DynamoDB has no max(), so each update is conditional ("none, or an
    earlier one"); a failed condition cancels the whole transaction, and the shards that
    failed it, which hold a later time and keep it, are left out of the next attempt.
    """
    pending = list(range(Invalidation.shards()))
    for attempt in range(MAX_ATTEMPTS):
        pending, collided = _write_shards(scope, attribute, at, pending)
        if not pending:
            return
        if collided:
            _backoff(attempt)
    raise DependencyUnavailable(f"concurrent invalidations of {scope} kept colliding; retry")


def reshard() -> int:
    """Copy each scope's latest times to all its shards; return how many scopes there are.

    Once, for a table whose invalidations were recorded before scopes were sharded (they
    are in shard 0, the old key), and after raising INVALIDATION_SHARDS: until then what
    only some shards hold is seen by some requests only. Safe to repeat or to run while
    serving: a shard keeps a later time than the one copied.
    """
    latest: dict[str, dict[str, float]] = {}
    for item in Invalidation.scan(Invalidation.sk == Invalidation.SORT, consistent_read=True):
        scope, _ = Invalidation.scope_of(item.pk)
        times = latest.setdefault(scope, {})
        for name, value in (("hard_at", item.hard_at), ("soft_at", item.soft_at)):
            if value is not None:
                times[name] = max(times.get(name, 0.0), float(value))
    for scope, times in latest.items():
        for name, at in times.items():
            record(scope, getattr(Invalidation, name), at)
    return len(latest)


def _write_shards(
    scope: str, attribute: NumberAttribute, at: float, shards: list[int]
) -> tuple[list[int], bool]:
    """One transaction over `shards`: the shards still to write, and whether it collided."""
    try:
        with TransactWrite(connection=shared_connection()) as transaction:
            for shard in shards:
                transaction.update(
                    Invalidation(Invalidation.key_for(scope, shard), Invalidation.SORT),
                    actions=[attribute.set(at)],
                    condition=attribute.does_not_exist() | (attribute < at),
                )
    except TransactWriteError as exc:
        # In the order of the items; None for those that stopped nothing.
        reasons = exc.cancellation_reasons if cause_code(exc) == CANCELLED else []
        codes = [reason.code if reason is not None else None for reason in reasons]
        if len(codes) != len(shards) or not set(codes) <= {None, KEPT_LATER, COLLIDED}:
            raise
        left = [shard for shard, code in zip(shards, codes, strict=True) if code != KEPT_LATER]
        return left, COLLIDED in codes
    return [], False


def _backoff(attempt: int) -> None:
    # Full jitter keeps two invalidations of one scope from colliding in lock step.
    time.sleep(random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)))


def apply(
    request: FeedInvalidation | CollectionInvalidation, *, now: float, collections: CollectionStore
) -> dict[str, Any]:
    """Carry out an invalidation and describe it: the time, or the collection's new version."""
    if isinstance(request, CollectionInvalidation):
        return {"invalidated": request.describe(), "version": collections.bump(request.ref)}
    at = invalidate(request, now=now)
    return {
        "invalidated": request.describe(),
        "at": datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="microseconds"),
    }
