"""PynamoDB models of collections, in the single table beside the feed models.

One partition per collection (`COLLECTION#users/42/matches`) holds its pointer, its snapshots
and its members; each entity has a partition of its own.
"""

from __future__ import annotations

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    NumberAttribute,
    UnicodeAttribute,
)

from offload.models import TableModel, register_model

SNAPSHOT_PREFIX = "SNAPSHOT#"
MEMBER_PREFIX = "MEMBER#"


@register_model
class CollectionPointer(TableModel):
    """The current version of one collection: the only mutable item of the pattern."""

    class Meta(TableModel.Meta):
        pass

    SORT = "POINTER"

    version = UnicodeAttribute()
    moved_at = NumberAttribute()


@register_model
class Snapshot(TableModel):
    """The list as it was when `version` was created; written once, never changed.

    A body that fits stays inline; a larger one is split into `SnapshotChunk` items
    written before this header, whose `chunk_prefix` names them.
    """

    class Meta(TableModel.Meta):
        pass

    version = UnicodeAttribute()
    etag = UnicodeAttribute()
    size = NumberAttribute()
    # `count` would shadow Model.count(); the stored attribute keeps its name.
    id_count = NumberAttribute(attr_name="count")
    created_at = NumberAttribute()
    body = BinaryAttribute(null=True, legacy_encoding=False)
    chunk_prefix = UnicodeAttribute(null=True)
    chunks = NumberAttribute(default=0)

    @staticmethod
    def key_for(version: str) -> str:
        return f"{SNAPSHOT_PREFIX}{version}"


@register_model
class SnapshotChunk(TableModel):
    """One slice of a snapshot body too large for a single item (400 KB)."""

    class Meta(TableModel.Meta):
        pass

    data = BinaryAttribute(legacy_encoding=False)

    @staticmethod
    def prefix_for(version: str, nonce: str) -> str:
        # The nonce keeps the chunks of a transaction that lost apart from the winner's.
        return f"{SNAPSHOT_PREFIX}{version}#{nonce}#"

    @staticmethod
    def key_for(prefix: str, index: int) -> str:
        return f"{prefix}{index:05d}"


@register_model
class CollectionMember(TableModel):
    """An entity's place in a collection; the source every fresh snapshot is built from."""

    class Meta(TableModel.Meta):
        pass

    entity_id = UnicodeAttribute()

    @staticmethod
    def key_for(order_key: str, entity_id: str) -> str:
        return f"{MEMBER_PREFIX}{order_key}#{entity_id}"


@register_model
class Entity(TableModel):
    """An entity's canonical JSON body; immutable once final."""

    class Meta(TableModel.Meta):
        pass

    SORT = "ENTITY"

    body = UnicodeAttribute()
    digest = UnicodeAttribute()
    final = BooleanAttribute()
    recorded_at = NumberAttribute()

    @staticmethod
    def key_for(collection: str, entity_id: str) -> str:
        return f"ENTITY#{collection}#{entity_id}"


COLLECTION_MODELS = (CollectionPointer, Snapshot, SnapshotChunk, CollectionMember, Entity)
