"""The feed registry: feeds are plugins registered by name."""

from __future__ import annotations

from collections.abc import Iterator

from offload.feeds.base import Feed


class FeedRegistry:
    """Feeds by name; registering a name twice is a programming error."""

    def __init__(self) -> None:
        self._feeds: dict[str, Feed] = {}

    def register(self, feed: Feed) -> Feed:
        if feed.name in self._feeds:
            raise ValueError(f"feed {feed.name!r} is already registered")
        self._feeds[feed.name] = feed
        return feed

    def unregister(self, name: str) -> None:
        self._feeds.pop(name, None)

    def get(self, name: str) -> Feed | None:
        return self._feeds.get(name)

    def __iter__(self) -> Iterator[Feed]:
        return iter(sorted(self._feeds.values(), key=lambda feed: feed.name))


REGISTRY = FeedRegistry()
