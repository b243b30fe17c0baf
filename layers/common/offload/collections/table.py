"""PynamoDB models of collections, in the single table beside the feed models.

One partition per collection (`COLLECTION#users/42/matches`) holds its pointer, its versions,
its pages and its members; each entity has a partition of its own.
"""

from __future__ import annotations

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    ListAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)

from offload.table import TableModel, register_model

SNAPSHOT_PREFIX = "SNAPSHOT#"
PAGE_PREFIX = "PAGE#"
MEMBER_PREFIX = "MEMBER#"
# Sorts after every member key ('$' follows '#') and before every other kind of item.
MEMBER_END = "MEMBER$"


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
    """A version: its first page (`ids`, the newest members) and the chain of full pages below.

    Written once; the version that supersedes it sets `expires_at`, in the same transaction.
    Versions written before pages existed (`ids` is null) hold their whole list in `body`, or
    in `SnapshotChunk` items named by `chunk_prefix`; they are still served.
    """

    class Meta(TableModel.Meta):
        pass

    version = UnicodeAttribute()
    # `count` would shadow Model.count(); the stored attribute keeps its name.
    id_count = NumberAttribute(attr_name="count")
    created_at = NumberAttribute()
    # PynamoDB types `of` as the element's Python type; it takes the attribute class.
    ids = ListAttribute[str](of=UnicodeAttribute, null=True)  # type: ignore[arg-type]
    # The newest full page, and the member key of its newest id: members above it are `ids`.
    full = UnicodeAttribute(null=True)
    boundary = UnicodeAttribute(null=True)
    expires_at = TTLAttribute(null=True)
    etag = UnicodeAttribute(null=True)
    size = NumberAttribute(null=True)
    body = BinaryAttribute(null=True, legacy_encoding=False)
    chunk_prefix = UnicodeAttribute(null=True)
    chunks = NumberAttribute(default=0)

    @property
    def legacy(self) -> bool:
        """Whether this version predates pages (its whole list in one body)."""
        return self.ids is None

    @staticmethod
    def key_for(version: str) -> str:
        return f"{SNAPSHOT_PREFIX}{version}"


@register_model
class Page(TableModel):
    """A full page of ids, newest first, and the page of older ids before it.

    Content-addressed (`page_id` hashes the ids and `prev`, so a page names its whole past)
    and immutable: every version whose list runs through it shares it. It only gets an
    `expires_at` when a rebuild of the list replaces it.
    """

    class Meta(TableModel.Meta):
        pass

    ids = ListAttribute[str](of=UnicodeAttribute)  # type: ignore[arg-type]
    prev = UnicodeAttribute(null=True)
    # The member keys this page covers: above `floor` (the previous page's `high`), up to `high`.
    floor = UnicodeAttribute(null=True)
    high = UnicodeAttribute()
    # Ids in this page and every page before it.
    total = NumberAttribute()
    expires_at = TTLAttribute(null=True)

    @property
    def page_id(self) -> str:
        return self.sk.removeprefix(PAGE_PREFIX)

    @staticmethod
    def key_for(page_id: str) -> str:
        return f"{PAGE_PREFIX}{page_id}"


@register_model
class SnapshotChunk(TableModel):
    """One slice of a version body written before pages existed (read, never written)."""

    class Meta(TableModel.Meta):
        pass

    data = BinaryAttribute(legacy_encoding=False)


@register_model
class CollectionMember(TableModel):
    """An entity's place in a collection; the source every page and first page is built from."""

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


COLLECTION_MODELS = (CollectionPointer, Snapshot, Page, SnapshotChunk, CollectionMember, Entity)
