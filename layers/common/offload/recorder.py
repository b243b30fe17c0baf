"""Recording uploads: S3 events move cache entries forward and release rebuild locks."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pynamodb.exceptions import DeleteError, PutError

from offload import locks, storage
from offload.files import Generation
from offload.observability import logger
from offload.table import CacheEntry, condition_failed


class Recorded(StrEnum):
    """What recording one S3 event did."""

    ADVANCED = "advanced"  # the entry now points at this object
    OLDER = "older"  # a newer generation (or this one, again) is already recorded
    GONE = "gone"  # the object was deleted before we got to it
    DROPPED = "dropped"  # a removed object's entry was dropped
    UNRELATED = "unrelated"  # not a generated object, or not the entry's object
    COPY = "copy"  # a generation's gzip copy: it is recorded with the plain object


def record_created(s3: Any, bucket: str, key: str) -> Recorded:
    """Point the entry at the uploaded object if it is newer than the recorded one."""
    generation = Generation.of_object(key)
    if generation is None:
        if Generation.of_gzip_copy(key) is not None:
            return Recorded.COPY
        logger.warning("not a generated object; ignored", extra={"key": key})
        return Recorded.UNRELATED
    stored = storage.head(s3, bucket, key)
    if stored is None:
        return Recorded.GONE
    entry = CacheEntry(
        CacheEntry.key_for(generation.cache_id),
        CacheEntry.SORT,
        cache_id=generation.cache_id,
        object_key=key,
        generation_id=generation.id,
        generated_at=generation.started_at,
        content_type=stored.content_type,
        size=stored.size,
        source_etag=stored.metadata.get(storage.SOURCE_ETAG),
        source_last_modified=stored.metadata.get(storage.SOURCE_LAST_MODIFIED),
    )
    if stored.integrity is not None:
        entry.sha256 = stored.integrity.plain.sha256
        entry.gzip_sha256 = stored.integrity.gzip.sha256
        entry.gzip_size = stored.integrity.gzip.size
    outcome = Recorded.ADVANCED
    try:
        # Only forward: duplicates and late, older events leave the newest generation.
        entry.save(
            condition=CacheEntry.generated_at.does_not_exist()
            | (CacheEntry.generated_at < generation.started_at)
        )
    except PutError as exc:
        if not condition_failed(exc):
            raise
        outcome = Recorded.OLDER
    locks.release(generation)
    return outcome


def record_removed(key: str) -> Recorded:
    """Drop the entry if it points at the removed object, so the next request regenerates."""
    generation = Generation.of_object(key)
    if generation is None:
        return Recorded.COPY if Generation.of_gzip_copy(key) else Recorded.UNRELATED
    try:
        CacheEntry(CacheEntry.key_for(generation.cache_id), CacheEntry.SORT).delete(
            condition=CacheEntry.object_key == key
        )
    except DeleteError as exc:
        if not condition_failed(exc):
            raise
        return Recorded.UNRELATED
    return Recorded.DROPPED
