"""Plugins by name: the feeds and the collections a deployment serves."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class Registry(Generic[K, T]):
    """Plugins keyed by name; registering a name twice is a programming error."""

    def __init__(self, kind: str, name: Callable[[T], K]) -> None:
        self._kind = kind
        self._name = name
        self._plugins: dict[K, T] = {}

    def register(self, plugin: T) -> T:
        name = self._name(plugin)
        if name in self._plugins:
            raise ValueError(f"{self._kind} {name!r} is already registered")
        self._plugins[name] = plugin
        return plugin

    def unregister(self, name: K) -> None:
        self._plugins.pop(name, None)

    def get(self, name: K) -> T | None:
        return self._plugins.get(name)

    def __iter__(self) -> Iterator[T]:
        return iter([self._plugins[name] for name in sorted(self._plugins, key=repr)])
