"""Invalidations: parsing requests and recording the time that makes older files unusable."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import UpdateError

from offload.collections import REGISTRY as COLLECTIONS
from offload.collections import CollectionRef
from offload.collections.store import CollectionStore
from offload.errors import InvalidRequest, NotFound
from offload.feeds import REGISTRY as FEEDS
from offload.feeds.base import SLUG
from offload.models import Invalidation, condition_failed
from offload.scopes import Kind, Scope

# The request field that names each kind of scope.
FIELDS = {"scope": Kind.GLOBAL, "feed": Kind.FEED, "client": Kind.CLIENT}


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
    """Record the invalidation at `now`; a later one already recorded is kept."""
    attribute = Invalidation.soft_at if request.soft else Invalidation.hard_at
    try:
        Invalidation(Invalidation.key_for(request.scope.key), Invalidation.SORT).update(
            actions=[attribute.set(now)],
            condition=attribute.does_not_exist() | (attribute < now),
        )
    except UpdateError as exc:
        if not condition_failed(exc):
            raise
    return now


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
