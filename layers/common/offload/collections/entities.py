"""Entities: stored once (idempotently), listed in their owners' collections, read back."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import PutError

from offload.collections.plugin import Collection, Record, canonical_json, check_id
from offload.collections.store import CollectionStore, Entry
from offload.collections.table import Entity
from offload.errors import Conflict, NotFound, PayloadTooLarge
from offload.table import condition_failed, dynamodb_client, put_unless


@dataclass(frozen=True, slots=True)
class Recorded:
    """The outcome of recording an entity: new or already known, and the versions it made."""

    created: bool
    record: Record
    body: str
    versions: dict[str, str]


class EntityStore:
    """Records entities and keeps their owners' collections in step."""

    def __init__(
        self,
        collections: CollectionStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._collections = collections
        self._clock = clock

    def record(self, collection: Collection, document: Mapping[str, Any]) -> Recorded:
        """Store the entity, then give each owner a version listing it, if it is final.

        The same body again is a no-op that still finishes what a crash left undone (a
        member not written, a version not created); a different body is a Conflict once
        the stored entity is final.
        """
        record = collection.record(document)
        body = canonical_json(record.body)
        if len(body.encode()) > collection.max_entity_bytes:
            raise PayloadTooLarge(
                f"a {collection.entity} is at most {collection.max_entity_bytes} bytes"
            )
        created = self._store(collection, record, body)
        versions = {}
        if record.order_key is not None:
            versions = self._list(collection, record, record.order_key, created)
        return Recorded(created=created, record=record, body=body, versions=versions)

    def load(self, collection: Collection, entity_id: str) -> Entity:
        """The stored entity; NotFound when there is none."""
        check_id(entity_id, f"{collection.entity} id")
        try:
            # Consistent: an entity just recorded must be readable at once.
            return Entity.get(
                Entity.key_for(collection.name, entity_id), Entity.SORT, consistent_read=True
            )
        except Entity.DoesNotExist as exc:
            raise NotFound(f"there is no {collection.entity} {entity_id!r}") from exc

    def _store(self, collection: Collection, record: Record, body: str) -> bool:
        """Write the entity if it is new; True when it was."""
        item = Entity(
            Entity.key_for(collection.name, record.entity_id),
            Entity.SORT,
            body=body,
            digest=hashlib.sha256(body.encode()).hexdigest(),
            final=record.final,
            recorded_at=self._clock(),
        )
        stored = put_unless(dynamodb_client(), item, Entity.pk.does_not_exist())
        if stored is None:
            return True
        if stored.digest == item.digest:
            return False
        if stored.final:
            raise Conflict(
                f"{collection.entity} {record.entity_id!r} was recorded with a different body"
            )
        # Not final yet, so it may still change; but only from the version we just saw.
        try:
            item.save(condition=Entity.digest == stored.digest)
        except PutError as exc:
            if not condition_failed(exc):
                raise
            raise Conflict(
                f"{collection.entity} {record.entity_id!r} changed meanwhile; retry"
            ) from exc
        return False

    def _list(
        self, collection: Collection, record: Record, order_key: str, created: bool
    ) -> dict[str, str]:
        """List the entity for each owner and move each owner's pointer past it."""
        refs = [collection.of(owner) for owner in record.owners]
        entry = Entry(record.entity_id, order_key)
        self._collections.add((ref, entry) for ref in refs)
        # A first recording makes a version per owner unless a concurrent one already lists
        # it; a repeat bumps only where it is missing.
        # One owner after another, on the request's thread: a bump sleeping between attempts
        # after a lost race then ties up no worker of the runtime's shared pool.
        versions = [self._collections.bump(ref, entry=entry, just_added=created) for ref in refs]
        return dict(zip(record.owners, versions, strict=True))
