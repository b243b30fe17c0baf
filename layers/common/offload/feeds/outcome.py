"""What serving a feed request came to, named as its `Cache-Status` entry says it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from offload.storage import Integrity

CACHE_STATUS_NAME = "Offload"


class Outcome(StrEnum):
    """Offload's decision, as the parameters of its RFC 9211 `Cache-Status` entry."""

    HIT = "hit"
    # This request generated the file and stored it.
    STORED = "fwd=miss; stored"
    # It waited for the generation another request had started.
    COLLAPSED = "fwd=miss; collapsed"
    # The wait ran out: it generated a private copy, answered inline and not stored.
    PRIVATE = "fwd=miss"
    # Another request is rebuilding; an older file answers meanwhile.
    STALE = "hit; fwd=stale"
    # The rebuild failed; an older file answers (stale-if-error).
    STALE_ON_ERROR = "hit; fwd=stale; detail=error"
    # The file was old; its source answered 304 to a conditional request: it is renewed.
    REVALIDATED = "fwd=stale; fwd-status=304"
    # The file is being generated in the background and nothing may answer meanwhile.
    PENDING = "fwd=miss; detail=pending"

    @property
    def cache_status(self) -> str:
        """The `Cache-Status` entry; an edge in front appends its own after it."""
        return f"{CACHE_STATUS_NAME}; {self.value}"


@dataclass(frozen=True, slots=True)
class Served:
    """The file that answers: a stored object, bytes inline, or both (stored and small);
    none while it is PENDING."""

    outcome: Outcome
    object_key: str | None = None
    body: bytes | None = None
    # The file's size where known without another request.
    size: int | None = None
    # Both copies' sizes and digests, where known without another request.
    integrity: Integrity | None = None

    def __post_init__(self) -> None:
        if self.object_key is None and self.body is None and self.outcome is not Outcome.PENDING:
            raise ValueError("a served file is an object, bytes, or both")
