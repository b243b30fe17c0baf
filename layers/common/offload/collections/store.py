"""Pointers, snapshots and members: creating versions atomically and reading them back."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from offload.collections.base import VERSION, CollectionRef, next_version
from offload.collections.models import (
    MEMBER_PREFIX,
    CollectionMember,
    CollectionPointer,
    Snapshot,
    SnapshotChunk,
)
from offload.config import Settings
from offload.errors import DependencyUnavailable, NotFound
from offload.etags import entity_tag
from offload.models import cause_code, connection_options
from offload.observability import logger

ALL_OLD = "ALL_OLD"
CANCELLED = "TransactionCanceledException"
# What a version's transaction writes, in order.
TRANSACTION = ("snapshot", "pointer")
# Why a transaction lost a race; anything else (throttling, validation) is a real failure.
LOST_RACE = frozenset({"ConditionalCheckFailed", "TransactionConflict"})
# An item is at most 400 KB, key and attribute names included.
INLINE_BYTES = 350_000
CHUNK_BYTES = 350_000
# Contention is per collection: a writer loses at most once per concurrent winner.
MAX_ATTEMPTS = 40
BACKOFF_BASE_SECONDS = 0.01
BACKOFF_CAP_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Entry:
    """A member to list: the entity id and the text its list position sorts by."""

    entity_id: str
    order_key: str


class CollectionStore:
    """Every collection's pointer, snapshots and members in the table."""

    def __init__(self, connection: Connection, *, clock: Callable[[], float] = time.time) -> None:
        self._connection = connection
        self._clock = clock

    @classmethod
    def for_settings(cls, settings: Settings) -> CollectionStore:
        """A store on the configured table, with an API's timeouts."""
        return cls(Connection(**connection_options(settings)))

    def current(self, ref: CollectionRef) -> str | None:
        """The pointer's version, or None when the collection has none yet."""
        try:
            # Consistent: a version just moved must not be read back as the one before.
            pointer = CollectionPointer.get(
                ref.partition, CollectionPointer.SORT, consistent_read=True
            )
        except CollectionPointer.DoesNotExist:
            return None
        return pointer.version

    def version(self, ref: CollectionRef) -> str:
        """The current version, created from the members if there is none yet.

        Concurrent first reads race on one conditional transaction; the losers answer the
        winner's version, so all agree and only one snapshot is written.
        """
        for attempt in range(MAX_ATTEMPTS):
            if (current := self.current(ref)) is not None:
                return current
            _, current = self._commit(ref, None, self._members(ref))
            if current is not None:
                return current
            _backoff(attempt)
        raise _contended(ref)

    def bump(
        self, ref: CollectionRef, *, unless_listed: str | None = None, just_added: bool = False
    ) -> str:
        """Create the next version with a fresh snapshot of the members; return it.

        With `unless_listed`, the current version is kept when its snapshot already lists
        that entity: completing a recording that crashed must not bump twice, and a writer
        that lost the race to a version listing its entity is done (so concurrent recordings
        for one owner share versions instead of queueing for one each). `just_added` skips
        that read before the first attempt, when the entity cannot be listed yet.
        """
        for attempt in range(MAX_ATTEMPTS):
            base = self.current(ref)
            if (
                unless_listed is not None
                and base is not None
                and (attempt > 0 or not just_added)
                and unless_listed in self.ids(ref, base)
            ):
                return base
            # Members are read after the pointer: whatever the base's writers added is seen.
            won, version = self._commit(ref, base, self._members(ref))
            if won and version is not None:
                logger.info("collection version created", extra={"collection": ref.path})
                return version
            _backoff(attempt)
        raise _contended(ref)

    def snapshot(self, ref: CollectionRef, version: str) -> Snapshot:
        """The snapshot header of `version`; NotFound when the collection never had it."""
        if not VERSION.fullmatch(version):
            # Versions are opaque to clients: a malformed one is just one we never issued.
            raise NotFound(f"{ref.path} has no version {version!r}")
        try:
            return Snapshot.get(ref.partition, Snapshot.key_for(version), consistent_read=True)
        except Snapshot.DoesNotExist as exc:
            raise NotFound(f"{ref.path} has no version {version!r}") from exc

    def body(self, ref: CollectionRef, header: Snapshot) -> bytes:
        """The snapshot's exact bytes, joined from its chunks when it has them."""
        if not header.chunks:
            return bytes(header.body or b"")
        chunks = SnapshotChunk.query(
            ref.partition,
            SnapshotChunk.sk.startswith(header.chunk_prefix),
            consistent_read=True,
        )
        data = b"".join(bytes(chunk.data) for chunk in chunks)
        if len(data) != header.size:
            raise DependencyUnavailable(f"snapshot {header.version} of {ref.path} is incomplete")
        return data

    def ids(self, ref: CollectionRef, version: str) -> list[str]:
        """The entity ids listed by `version`, newest first."""
        document = json.loads(self.body(ref, self.snapshot(ref, version)))
        return list(document[ref.collection.ids_field])

    def add(self, entries: Iterable[tuple[CollectionRef, Entry]]) -> int:
        """List entities in collections (idempotent: the same entry is the same item)."""
        written = 0
        with CollectionMember.batch_write() as batch:
            for ref, entry in entries:
                batch.save(
                    CollectionMember(
                        ref.partition,
                        CollectionMember.key_for(entry.order_key, entry.entity_id),
                        entity_id=entry.entity_id,
                    )
                )
                written += 1
        return written

    def _members(self, ref: CollectionRef) -> list[str]:
        members = CollectionMember.query(
            ref.partition,
            CollectionMember.sk.startswith(MEMBER_PREFIX),
            consistent_read=True,
            scan_index_forward=False,  # order keys sort in time order: newest first
            attributes_to_get=["entity_id"],
        )
        return [member.entity_id for member in members]

    def _commit(
        self, ref: CollectionRef, base: str | None, ids: list[str]
    ) -> tuple[bool, str | None]:
        """Write a snapshot and move the pointer from `base` to a new version, atomically.

        Returns (True, new version) when committed, else (False, the pointer's version
        if DynamoDB told us, or None).
        """
        now = self._clock()
        version = next_version(base, now)
        body = json.dumps({ref.collection.ids_field: ids}, separators=(",", ":")).encode()
        prefix, chunks = _slices(ref, version, body)
        header = Snapshot(
            ref.partition,
            Snapshot.key_for(version),
            version=version,
            etag=entity_tag(body),
            size=len(body),
            id_count=len(ids),
            created_at=now,
        )
        if chunks:
            header.chunk_prefix, header.chunks = prefix, len(chunks)
            # Before the header: a committed header never names a chunk not yet written.
            with SnapshotChunk.batch_write() as batch:
                for chunk in chunks:
                    batch.save(chunk)
        else:
            header.body = body
        pointer = CollectionPointer(
            ref.partition, CollectionPointer.SORT, version=version, moved_at=now
        )
        moved_from = (
            CollectionPointer.pk.does_not_exist()
            if base is None
            else CollectionPointer.version == base
        )
        try:
            with TransactWrite(connection=self._connection) as transaction:
                # In the order of TRANSACTION: DynamoDB gives its reasons in the same order.
                transaction.save(header, condition=Snapshot.pk.does_not_exist())
                transaction.save(pointer, condition=moved_from, return_values=ALL_OLD)
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons if cause_code(exc) == CANCELLED else []
            if not reasons or any(r is not None and r.code not in LOST_RACE for r in reasons):
                raise
            self._discard(chunks)
            holder = dict(zip(TRANSACTION, reasons, strict=True))["pointer"]
            if holder is not None and holder.raw_item:
                return False, CollectionPointer.from_raw_data(holder.raw_item).version
            return False, None
        return True, version

    def _discard(self, chunks: list[SnapshotChunk]) -> None:
        # Chunks of a lost transaction are unreachable (no header names them): tidy up,
        # but a failure here costs only storage, never correctness.
        if not chunks:
            return
        try:
            with SnapshotChunk.batch_write() as batch:
                for chunk in chunks:
                    batch.delete(chunk)
        except Exception:
            logger.warning("could not delete orphaned snapshot chunks", exc_info=True)


def _slices(ref: CollectionRef, version: str, body: bytes) -> tuple[str, list[SnapshotChunk]]:
    """A body too large to keep inline in its header as items sharing a prefix; else none."""
    if len(body) <= INLINE_BYTES:
        return "", []
    # Unique per attempt: a lost attempt's orphans never mix with the winner's slices.
    prefix = SnapshotChunk.prefix_for(version, uuid.uuid4().hex[:12])
    return prefix, [
        SnapshotChunk(
            ref.partition,
            SnapshotChunk.key_for(prefix, index),
            data=body[offset : offset + CHUNK_BYTES],
        )
        for index, offset in enumerate(range(0, len(body), CHUNK_BYTES))
    ]


def _backoff(attempt: int) -> None:
    # Full jitter keeps writers racing on one pointer from colliding in lock step.
    time.sleep(random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)))


def _contended(ref: CollectionRef) -> DependencyUnavailable:
    return DependencyUnavailable(
        f"{ref.path} is changing too often to create a version; retry shortly", retry_after=1
    )
