"""The feed registry: feeds are plugins registered by name."""

from __future__ import annotations

from offload.feeds.plugin import Feed
from offload.registry import Registry

FeedRegistry = Registry[str, Feed]


def new_registry() -> FeedRegistry:
    """An empty registry of feeds by name."""
    return Registry("feed", lambda feed: feed.name)


REGISTRY = new_registry()
