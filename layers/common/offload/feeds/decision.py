"""The decision on a feed request, from what the table and the bucket say: no I/O here."""

from __future__ import annotations

from dataclasses import dataclass

from offload.feeds.base import Feed
from offload.freshness import Coverage, State, judge
from offload.models import CacheEntry


@dataclass(frozen=True, slots=True)
class Hit:
    """The recorded file is fresh: redirect to it."""

    object_key: str
    size: int


@dataclass(frozen=True, slots=True)
class Rebuild:
    """Generate anew. `stale` may answer meanwhile or on failure; `seen` is the object the
    entry named when read, so a newer one recorded since is noticed before generating."""

    stale: str | None = None
    seen: str | None = None


Decision = Hit | Rebuild


def decide(
    entry: CacheEntry | None, *, exists: bool, coverage: Coverage, feed: Feed, now: float
) -> Decision:
    """Hit when the entry is fresh; otherwise Rebuild, with the stale file if one may serve."""
    if entry is None:
        return Rebuild()
    state = judge(entry, exists=exists, coverage=coverage, max_age=feed.max_age_seconds, now=now)
    if state is State.FRESH:
        return Hit(entry.object_key, int(entry.size))
    return Rebuild(stale=entry.object_key if state is State.STALE else None, seen=entry.object_key)
