"""The decision on a feed request, from what the table and the bucket say: no I/O here."""

from __future__ import annotations

from dataclasses import dataclass

from offload.feeds.plugin import Feed, Validators
from offload.freshness import Coverage, State, judge
from offload.storage import Copy, Integrity
from offload.table import CacheEntry


@dataclass(frozen=True, slots=True)
class Hit:
    """The recorded file is fresh: redirect to it."""

    object_key: str
    size: int
    # What the entry recorded of both copies (None for an entry from before digests).
    integrity: Integrity | None = None


@dataclass(frozen=True, slots=True)
class Rebuild:
    """Generate anew. `stale` may answer meanwhile or on failure; `seen` is the object the
    entry named when read, so a newer one recorded since is noticed before generating.
    `previous`: the stale file's source validators, when only its age made it stale, so
    the source may be asked whether it changed."""

    stale: str | None = None
    seen: str | None = None
    previous: Validators | None = None
    # What the entry recorded of the stale file's copies, so answering it costs no HEAD.
    stale_integrity: Integrity | None = None


Decision = Hit | Rebuild


def decide(
    entry: CacheEntry | None, *, exists: bool, coverage: Coverage, feed: Feed, now: float
) -> Decision:
    """Hit when the entry is fresh; otherwise Rebuild, with the stale file if one may serve."""
    if entry is None:
        return Rebuild()
    state = judge(entry, exists=exists, coverage=coverage, max_age=feed.max_age_seconds, now=now)
    if state is State.FRESH:
        return Hit(entry.object_key, int(entry.size), integrity_of(entry))
    if state is not State.STALE:
        return Rebuild(seen=entry.object_key)
    # After an invalidation the source is asked afresh: it may not know what changed.
    validators = Validators(entry.source_etag, entry.source_last_modified)
    only_old = float(entry.generated_at) > coverage.latest
    return Rebuild(
        stale=entry.object_key,
        seen=entry.object_key,
        previous=validators if only_old and validators else None,
        stale_integrity=integrity_of(entry),
    )


def integrity_of(entry: CacheEntry) -> Integrity | None:
    """The digests and sizes an entry recorded, if it did."""
    if entry.sha256 is None or entry.gzip_sha256 is None or entry.gzip_size is None:
        return None
    return Integrity(
        plain=Copy(int(entry.size), entry.sha256),
        gzip=Copy(int(entry.gzip_size), entry.gzip_sha256),
    )
