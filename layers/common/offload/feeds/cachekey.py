"""Feed requests: strict path validation and a canonical cache key per request."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from offload.auth import KEY_QUERY
from offload.errors import InvalidRequest, NotFound
from offload.feeds.delivery import REDIRECT_QUERY
from offload.feeds.plugin import SHARED_OWNER, Feed
from offload.feeds.registry import FeedRegistry

FILE_PATTERN = re.compile(r"(?P<feed>[a-z0-9][a-z0-9_-]{0,62})\.(?P<format>[a-z0-9]{1,10})")
MAX_VALUE_LENGTH = 200
# Query parameters about the request, not the file: never in the cache key.
DELIVERY_QUERY = frozenset({KEY_QUERY, REDIRECT_QUERY})


@dataclass(frozen=True, slots=True)
class FeedRequest:
    """One client's request for one feed, format and canonical parameter set."""

    feed: Feed
    format: str
    client_id: str
    params: tuple[tuple[str, str], ...]

    @property
    def owner(self) -> str:
        """Whose file this is: the client's, or every client's for a shared feed."""
        return SHARED_OWNER if self.feed.shared else self.client_id

    @property
    def canonical(self) -> str:
        query = urlencode(self.params)
        return f"{self.owner}:{self.feed.name}.{self.format}?{query}"

    @property
    def cache_id(self) -> str:
        return hashlib.sha256(self.canonical.encode()).hexdigest()[:32]

    @property
    def content_type(self) -> str:
        return self.feed.formats[self.format]


def parse_feed_request(
    file: str, raw_query: str, client_id: str, registry: FeedRegistry
) -> FeedRequest:
    """Validate `{feed}.{format}` and the query; undeclared parameters are rejected."""
    match = FILE_PATTERN.fullmatch(file)
    if not match:
        raise InvalidRequest("the path must be /feeds/{feed}.{format} in lower-case letters")
    feed = registry.get(match["feed"])
    if feed is None:
        raise NotFound(f"there is no feed {match['feed']!r}")
    if match["format"] not in feed.formats:
        raise NotFound(
            f"feed {feed.name!r} comes as {', '.join(sorted(feed.formats))}, "
            f"not {match['format']!r}"
        )
    params: dict[str, str] = {}
    for name, raw in parse_qsl(raw_query, keep_blank_values=True, strict_parsing=False):
        if name in DELIVERY_QUERY:
            continue
        declared = feed.parameter(name)
        if declared is None:
            raise InvalidRequest(f"feed {feed.name!r} takes no parameter {name!r}")
        if name in params:
            raise InvalidRequest(f"parameter {name!r} is given more than once")
        value = declared.normalise(raw)
        if len(value) > MAX_VALUE_LENGTH or not declared.pattern.fullmatch(value):
            raise InvalidRequest(f"parameter {name!r} must be {declared.description or 'a slug'}")
        params[name] = value
    return FeedRequest(
        feed=feed,
        format=match["format"],
        client_id=client_id,
        params=tuple(sorted(params.items())),
    )
