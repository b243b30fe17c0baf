"""Entity tags and `If-None-Match`, the same rules for collections and feeds."""

from __future__ import annotations

import hashlib


def entity_tag(body: bytes) -> str:
    """A strong ETag: the quoted SHA-256 of the exact bytes answered."""
    return f'"{hashlib.sha256(body).hexdigest()}"'


def matches_any(if_none_match: str | None, etag: str) -> bool:
    """Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 says) or is `*`."""
    if not if_none_match:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)
