"""One generation of a feed file: its id, start time and object key, formatted and parsed here."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

# Served by the CDN under /files/*, a path no API route uses (the API owns /feeds/*).
OBJECT_PREFIX = "files"
# Each generation is stored twice: as generated, and gzip-encoded under this suffix.
GZIP_SUFFIX = ".gz"
# Microseconds since the epoch, then randomness: sortable by start, unique across concurrency.
_ID = re.compile(r"(?P<started_us>[0-9]{16})-[0-9a-f]{8}")
OBJECT_KEY = re.compile(
    rf"{OBJECT_PREFIX}/(?P<feed>[a-z0-9_-]+)/[A-Za-z0-9_.-]+/(?P<cache_id>[0-9a-f]{{32}})/"
    rf"(?P<id>{_ID.pattern})\.(?P<format>[a-z0-9]{{1,10}})"
)


class Named(Protocol):
    """Anything with a name: a feed."""

    @property
    def name(self) -> str: ...


class FileRequest(Protocol):
    """What names a feed's file (`offload.feeds.cachekey.FeedRequest` is one; files sit below
    feeds, so they name no feed type)."""

    @property
    def feed(self) -> Named: ...

    @property
    def owner(self) -> str: ...

    @property
    def cache_id(self) -> str: ...

    @property
    def format(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Generation:
    """One attempt at building a cache key's file; its id also names the lock's owner."""

    id: str
    cache_id: str
    object_key: str

    @classmethod
    def start(cls, request: FileRequest, now: float) -> Generation:
        """A new generation of `request`'s file, started at `now`, under a never-used key."""
        generation_id = f"{int(now * 1_000_000):016d}-{secrets.token_hex(4)}"
        return cls(
            id=generation_id,
            cache_id=request.cache_id,
            object_key=(
                f"{OBJECT_PREFIX}/{request.feed.name}/{request.owner}/{request.cache_id}/"
                f"{generation_id}.{request.format}"
            ),
        )

    @classmethod
    def of_object(cls, object_key: str) -> Generation | None:
        """The generation stored under `object_key`, or None when Offload did not write it."""
        match = OBJECT_KEY.fullmatch(object_key)
        if match is None:
            return None
        return cls(id=match["id"], cache_id=match["cache_id"], object_key=object_key)

    @property
    def owner(self) -> str:
        """Who holds the rebuild lock while this generation runs."""
        return self.id

    @property
    def etag(self) -> str:
        """The strong entity tag of the file: it names the generation, so it never repeats."""
        return f'"{self.id}"'

    @property
    def gzip_key(self) -> str:
        """Where the gzip-encoded copy of the file is stored, beside it."""
        return self.object_key + GZIP_SUFFIX

    @property
    def gzip_etag(self) -> str:
        """The gzip copy is another representation, so another strong tag."""
        return f'"{self.id}{GZIP_SUFFIX}"'

    @classmethod
    def of_gzip_copy(cls, object_key: str) -> Generation | None:
        """The generation whose gzip copy is stored under `object_key`, if it is one."""
        if not object_key.endswith(GZIP_SUFFIX):
            return None
        return cls.of_object(object_key.removesuffix(GZIP_SUFFIX))

    @property
    def filename(self) -> str:
        """What a download is saved as: `catalog-2026-11-24.json`, by the generation's day."""
        match = OBJECT_KEY.fullmatch(self.object_key)
        if match is None:
            raise ValueError(f"not a generated object: {self.object_key!r}")
        return download_name(match["feed"], match["format"], self.started_at)

    @property
    def started_at(self) -> float:
        """When it began, the time invalidations are compared with."""
        match = _ID.fullmatch(self.id)
        if match is None:
            raise ValueError(f"not a generation id: {self.id!r}")
        return int(match["started_us"]) / 1_000_000


def download_name(feed: str, format: str, generated_at: float) -> str:
    """`<feed>-<day generated>.<format>`: one name for a file however it is delivered."""
    day = datetime.fromtimestamp(generated_at, tz=UTC).date().isoformat()
    return f"{feed}-{day}.{format}"
