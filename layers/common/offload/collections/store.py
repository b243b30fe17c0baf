"""Pointers, versions, pages and members: creating versions atomically and reading them back.

A version lists its owner's ids newest first, a page at a time. The version item holds the
first page (the members above its `boundary`, at most `page_size` of them) and names the
newest full page; each full page names the one before it. Full pages are content-addressed
and shared by every later version, so a recording rewrites the first page alone, however long
the list: when that page fills, its oldest `page_size` ids become one more full page.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from offload.collections.plugin import PAGE, VERSION, CollectionRef, next_version
from offload.collections.table import (
    MEMBER_END,
    MEMBER_PREFIX,
    CollectionMember,
    CollectionPointer,
    Page,
    Snapshot,
    SnapshotChunk,
)
from offload.config import Settings, default_of
from offload.errors import DependencyUnavailable, NotFound
from offload.observability import logger
from offload.table import cause_code, shared_connection

_Named = TypeVar("_Named", Snapshot, Page)
ALL_OLD = "ALL_OLD"
CANCELLED = "TransactionCanceledException"
# DynamoDB gives a cancelled transaction's reasons in the order of its items, puts first:
# the new version, then the pointer.
POINTER_ITEM = 1
# Why a transaction lost a race; anything else (throttling, validation) is a real failure.
LOST_RACE = frozenset({"ConditionalCheckFailed", "TransactionConflict"})
# Ids per full page, and at most in a version's first page. Each recording pays for the first
# page twice (written as the new version; updated when the next one supersedes it), about
# 20 bytes an id, so 100 keeps that near 2 KB; a whole list reads in n / 100 requests, each
# cacheable forever (README "Pages", bench/collection_writes.py).
PAGE_SIZE = 100
# One transaction holds at most 100 items and 4 MB; a rebuild with more pages writes them first.
TRANSACTION_ITEMS = 100
TRANSACTION_BYTES = 3_000_000
# What a version's transaction writes besides pages: the version, the pointer, the superseded.
VERSION_ITEMS = 3
# Per page, beyond its ids: keys, attribute names, member keys (bounded by the id patterns).
PAGE_OVERHEAD_BYTES = 400
# Contention is per collection: a writer loses at most once per concurrent winner.
MAX_ATTEMPTS = 40
BACKOFF_BASE_SECONDS = 0.01
BACKOFF_CAP_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Entry:
    """A member to list: the entity id and the text its list position sorts by."""

    entity_id: str
    order_key: str

    @property
    def key(self) -> str:
        """Its member item's sort key: members sort by it, oldest first."""
        return CollectionMember.key_for(self.order_key, self.entity_id)


@dataclass(frozen=True, slots=True)
class Member:
    """A listed entity as the members query answers it."""

    key: str
    entity_id: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The next version's content: its first page, the pages it adds and those it drops."""

    head: list[str]
    full: str | None
    boundary: str | None
    count: int
    pages: list[Page]
    retired: list[Page]


def page_id(ids: Sequence[str], prev: str | None) -> str:
    """A page's name: the SHA-256 of its ids and of the name of the older page it links to,
    so one name stands for the whole list from this page's newest id down to the oldest."""
    digest = hashlib.sha256((prev or "").encode())
    for entity_id in ids:
        digest.update(b"\n" + entity_id.encode())
    return digest.hexdigest()


class CollectionStore:
    """Every collection's pointer, versions, pages and members in the table."""

    def __init__(
        self,
        connection: Connection,
        *,
        clock: Callable[[], float] = time.time,
        retention_seconds: int = default_of("superseded_retention"),
        page_size: int | None = None,
    ) -> None:
        self._connection = connection
        self._clock = clock
        self._retention_seconds = retention_seconds
        self._page_size = page_size or PAGE_SIZE

    @classmethod
    def for_settings(cls, settings: Settings) -> CollectionStore:
        """A store on the models' connection: the container's one DynamoDB client."""
        return cls(
            shared_connection(),
            retention_seconds=settings.superseded_retention,
        )

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
        winner's version, so all agree and only one version is written.
        """
        for attempt in range(MAX_ATTEMPTS):
            if (current := self.current(ref)) is not None:
                return current
            _, current = self._commit(ref, None, self._plan(ref, None, None))
            if current is not None:
                return current
            _backoff(attempt)
        raise _contended(ref)

    def bump(
        self, ref: CollectionRef, *, entry: Entry | None = None, just_added: bool = False
    ) -> str:
        """Create the next version; return it.

        With `entry`, the current version is kept when it already lists that entity:
        completing a recording that crashed must not bump twice, and a writer that lost the
        race to a version listing its entity is done (so concurrent recordings for one owner
        share versions instead of queueing for one each). `just_added` skips that check
        before the first attempt, when the entity cannot be listed yet. Only the pages from
        the entry's place on are rebuilt: the first page, unless it sorts below it.

        Without `entry` (an invalidation), the whole list is rebuilt from the members; the
        pages that come out the same are shared, not written again.
        """
        for attempt in range(MAX_ATTEMPTS):
            base = self._base(ref)
            if entry is None or base is None or base.legacy:
                plan = self._plan(ref, base, None)
            else:
                replaced = self._pages_from(ref, base, entry.key)
                listed = replaced[-1].ids if replaced else base.ids or []
                if (attempt > 0 or not just_added) and entry.entity_id in listed:
                    return base.version
                plan = self._plan(ref, base, replaced)
            won, version = self._commit(ref, base, plan)
            if won and version is not None:
                logger.info("collection version created", extra={"collection": ref.path})
                return version
            _backoff(attempt)
        raise _contended(ref)

    def snapshot(self, ref: CollectionRef, version: str) -> Snapshot:
        """The version item of `version`; NotFound when the collection never had it."""
        return _named(ref, Snapshot, "version", version, VERSION, Snapshot.key_for)

    def page(self, ref: CollectionRef, name: str) -> Page:
        """The full page named `name`; NotFound when the collection has none by that name."""
        return _named(ref, Page, "page", name, PAGE, Page.key_for)

    def body(self, ref: CollectionRef, header: Snapshot) -> bytes:
        """The version's first page as answered: its ids, and the next page's URL if any."""
        if header.legacy:
            return self._legacy_body(ref, header)
        return _document(ref, header.ids or [], header.full)

    def page_body(self, ref: CollectionRef, page: Page) -> bytes:
        """A full page as answered: its ids, and the next (older) page's URL if any."""
        return _document(ref, page.ids, page.prev)

    def ids(self, ref: CollectionRef, version: str) -> list[str]:
        """Every entity id `version` lists, newest first, following its pages."""
        header = self.snapshot(ref, version)
        if header.legacy:
            return list(json.loads(self._legacy_body(ref, header))[ref.collection.ids_field])
        ids = list(header.ids or [])
        for page in self._walk(ref, header.full):
            ids.extend(page.ids)
        return ids

    def add(self, entries: Iterable[tuple[CollectionRef, Entry]]) -> int:
        """List entities in collections (idempotent: the same entry is the same item)."""
        written = 0
        with CollectionMember.batch_write() as batch:
            for ref, entry in entries:
                batch.save(CollectionMember(ref.partition, entry.key, entity_id=entry.entity_id))
                written += 1
        return written

    def _base(self, ref: CollectionRef) -> Snapshot | None:
        """The version the pointer names, or None when there is no pointer yet."""
        if (current := self.current(ref)) is None:
            return None
        try:
            return Snapshot.get(ref.partition, Snapshot.key_for(current), consistent_read=True)
        except Snapshot.DoesNotExist as exc:
            raise DependencyUnavailable(f"{ref.path} names a missing version {current}") from exc

    def _walk(self, ref: CollectionRef, name: str | None) -> Iterator[Page]:
        """The full pages from `name` back to the oldest."""
        while name is not None:
            try:
                page = Page.get(ref.partition, Page.key_for(name), consistent_read=True)
            except Page.DoesNotExist as exc:
                raise DependencyUnavailable(f"{ref.path} names a missing page {name}") from exc
            yield page
            name = page.prev

    def _pages_from(self, ref: CollectionRef, base: Snapshot, key: str) -> list[Page]:
        """The full pages, newest first, down to the one whose range holds member `key`;
        none when `key` sorts into the first page (a recording in time order)."""
        if base.boundary is None or key > base.boundary:
            return []
        pages = []
        for page in self._walk(ref, base.full):
            pages.append(page)
            if page.floor is None or page.floor < key:
                break
        return pages

    def _plan(self, ref: CollectionRef, base: Snapshot | None, replaced: list[Page] | None) -> Plan:
        """The next version from the members above the kept pages.

        `replaced`: the base's pages to rebuild, newest first (none: only the first page);
        None rebuilds the whole list. Content addressing makes a rebuilt page that comes out
        the same the same item, so only pages that changed are written, and only pages the
        new version no longer names are retired.
        """
        if replaced is None:
            chain = None if base is None or base.legacy else base.full
            replaced = list(self._walk(ref, chain))
            prev, floor, total = None, None, 0
        elif replaced:
            oldest = replaced[-1]
            prev, floor, total = oldest.prev, oldest.floor, int(oldest.total) - len(oldest.ids)
        elif base is not None:
            prev, floor = base.full, base.boundary
            total = int(base.id_count) - len(base.ids or [])
        else:
            prev, floor, total = None, None, 0
        members = self._members_above(ref, floor)
        pages: list[Page] = []
        start = 0
        # The first page keeps 1 to page_size ids; older ones fill full pages, oldest first.
        while len(members) - start > self._page_size:
            page = _seal(ref, members[start : start + self._page_size], prev, floor, total)
            pages.append(page)
            prev, floor, total = page.page_id, page.high, int(page.total)
            start += self._page_size
        head = [member.entity_id for member in reversed(members[start:])]
        kept = {page.page_id for page in replaced}
        named = {page.page_id for page in pages}
        return Plan(
            head=head,
            full=prev,
            boundary=floor,
            count=total + len(head),
            pages=[page for page in pages if page.page_id not in kept],
            retired=[page for page in replaced if page.page_id not in named],
        )

    def _members_above(self, ref: CollectionRef, floor: str | None) -> list[Member]:
        """The members whose keys sort above `floor` (all when None), oldest first."""
        members = CollectionMember.query(
            ref.partition,
            CollectionMember.sk.between(floor or MEMBER_PREFIX, MEMBER_END),
            consistent_read=True,
            attributes_to_get=["sk", "entity_id"],
        )
        return [Member(member.sk, member.entity_id) for member in members if member.sk != floor]

    def _commit(
        self, ref: CollectionRef, base: Snapshot | None, plan: Plan
    ) -> tuple[bool, str | None]:
        """Write a version and its new pages and move the pointer from `base`, atomically;
        what the new version no longer names gets its expiry in the same transaction.

        Returns (True, new version) when committed, else (False, the pointer's version
        if DynamoDB told us, or None).
        """
        now = self._clock()
        version = next_version(None if base is None else base.version, now)
        header = Snapshot(
            ref.partition,
            Snapshot.key_for(version),
            version=version,
            id_count=plan.count,
            created_at=now,
            ids=plan.head,
            full=plan.full,
            boundary=plan.boundary,
        )
        pointer = CollectionPointer(
            ref.partition, CollectionPointer.SORT, version=version, moved_at=now
        )
        moved_from = (
            CollectionPointer.pk.does_not_exist()
            if base is None
            else CollectionPointer.version == base.version
        )
        # Long enough for anyone who read the old pointer to finish reading its pages.
        expires = datetime.fromtimestamp(now + self._retention_seconds, UTC)
        inline = _fits(plan)
        if not inline:
            # Content-addressed, so writing a page again is harmless; a lost race can leave
            # pages no version names, which costs storage only.
            with Page.batch_write() as batch:
                for page in plan.pages:
                    batch.save(page)
        try:
            with TransactWrite(connection=self._connection) as transaction:
                transaction.save(header, condition=Snapshot.pk.does_not_exist())
                transaction.save(pointer, condition=moved_from, return_values=ALL_OLD)
                if base is not None:
                    transaction.update(base, actions=[Snapshot.expires_at.set(expires)])
                if inline:
                    for page in plan.pages:
                        transaction.save(page)
                    for page in plan.retired:
                        transaction.update(page, actions=[Page.expires_at.set(expires)])
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons if cause_code(exc) == CANCELLED else []
            if not reasons or any(r is not None and r.code not in LOST_RACE for r in reasons):
                raise
            holder = reasons[POINTER_ITEM]
            if holder is not None and holder.raw_item:
                return False, CollectionPointer.from_raw_data(holder.raw_item).version
            return False, None
        if not inline:
            _retire(plan.retired, expires)
        return True, version

    def _legacy_body(self, ref: CollectionRef, header: Snapshot) -> bytes:
        """A version written before pages: the whole list, inline or joined from chunks."""
        if not header.chunks:
            return bytes(header.body or b"")
        chunks = SnapshotChunk.query(
            ref.partition,
            SnapshotChunk.sk.startswith(header.chunk_prefix or ""),
            consistent_read=True,
        )
        data = b"".join(bytes(chunk.data) for chunk in chunks)
        if len(data) != header.size:
            raise DependencyUnavailable(f"snapshot {header.version} of {ref.path} is incomplete")
        return data


def _seal(
    ref: CollectionRef, members: list[Member], prev: str | None, floor: str | None, total: int
) -> Page:
    ids = [member.entity_id for member in reversed(members)]
    return Page(
        ref.partition,
        Page.key_for(page_id(ids, prev)),
        ids=ids,
        prev=prev,
        floor=floor,
        high=members[-1].key,
        total=total + len(ids),
    )


def _document(ref: CollectionRef, ids: list[str], next_page: str | None) -> bytes:
    # Without a next page this is the whole list, byte for byte as before pages existed.
    document: dict[str, object] = {ref.collection.ids_field: ids}
    if next_page is not None:
        document["next"] = ref.page_url(next_page)
    return json.dumps(document, separators=(",", ":")).encode()


def _fits(plan: Plan) -> bool:
    """Whether the plan's pages fit in the version's transaction."""
    items = VERSION_ITEMS + len(plan.pages) + len(plan.retired)
    size = sum(PAGE_OVERHEAD_BYTES + sum(len(i) + 1 for i in page.ids) for page in plan.pages)
    return items <= TRANSACTION_ITEMS and size <= TRANSACTION_BYTES


def _retire(pages: list[Page], expires: datetime) -> None:
    # After the commit: a failure here leaves a page without its expiry, never a wrong list.
    for page in pages:
        try:
            page.update(actions=[Page.expires_at.set(expires)])
        except Exception:
            logger.warning("could not set the expiry of a replaced page", exc_info=True)


def _named(
    ref: CollectionRef,
    model: type[_Named],
    what: str,
    name: str,
    pattern: re.Pattern[str],
    key_for: Callable[[str], str],
) -> _Named:
    """The item a client named by `name`, read consistently (a version just committed may
    name a page written with it), or NotFound. Names are opaque to clients: a malformed
    one is just one never issued."""
    if pattern.fullmatch(name):
        try:
            return model.get(ref.partition, key_for(name), consistent_read=True)
        except model.DoesNotExist:
            pass
    raise NotFound(f"{ref.path} has no {what} {name!r}")


def _backoff(attempt: int) -> None:
    # Full jitter keeps writers racing on one pointer from colliding in lock step.
    time.sleep(random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)))


def _contended(ref: CollectionRef) -> DependencyUnavailable:
    return DependencyUnavailable(
        f"{ref.path} is changing too often to create a version; retry shortly", retry_after=1
    )
