"""The deployment's own modules, named by OFFLOAD_APP: imported and registered once per container.

Offload never imports a team's code. A deployment names its modules in one setting; each
defines `register(plugins)` and adds its feeds and collections to the registries it is
handed, as a Powertools app is handed its routers with `include_router`. Every function and
the `offload` command load the same modules, so all of them serve the same plugins.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from offload.config import OFFLOAD_APP, ConfigurationError

if TYPE_CHECKING:
    from offload.collections.plugin import CollectionRegistry
    from offload.feeds.registry import FeedRegistry

# What a plugin module defines: `def register(plugins: Plugins) -> None`.
HOOK = "register"


class Plugins:
    """What a plugin module's `register(plugins)` adds to: the feeds and collections served.

    New registries of its own, or with `shared` the container's, which the functions and
    the command serve from (`offload.feeds.REGISTRY`, `offload.collections.REGISTRY`). Each
    kind's code is imported when its registry is first asked for, so a function whose
    plugins declare only feeds never loads the collections' code, nor the other way round.
    """

    def __init__(self, *, shared: bool = False) -> None:
        self._shared = shared
        self._feeds: FeedRegistry | None = None
        self._collections: CollectionRegistry | None = None
        # The modules registered here so far, in order: each one once.
        self.modules: list[str] = []

    @property
    def feeds(self) -> FeedRegistry:
        if self._feeds is None:
            from offload.feeds.registry import REGISTRY, new_registry

            self._feeds = REGISTRY if self._shared else new_registry()
        return self._feeds

    @property
    def collections(self) -> CollectionRegistry:
        if self._collections is None:
            from offload.collections import REGISTRY
            from offload.collections.plugin import CollectionRegistry

            self._collections = REGISTRY if self._shared else CollectionRegistry()
        return self._collections


PLUGINS = Plugins(shared=True)
_lock = threading.Lock()


def load_plugins(modules: Iterable[str], plugins: Plugins = PLUGINS) -> Plugins:
    """Import each module and call its `register(plugins)`, once per container; a module
    that is missing, fails to import or to register is a ConfigurationError naming it."""
    with _lock:  # the local stack starts containers on several threads at once
        for name in modules:
            if name not in plugins.modules:
                _register(name, plugins)
                plugins.modules.append(name)
    return plugins


def _register(name: str, plugins: Plugins) -> None:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(f"{exc.name}.")):
            raise ConfigurationError(
                f"{OFFLOAD_APP} names {name!r}, which is not installed (is its layer listed?)"
            ) from exc
        raise ConfigurationError(f"plugin module {name!r} failed to import: {exc}") from exc
    except Exception as exc:
        raise ConfigurationError(f"plugin module {name!r} failed to import: {exc!r}") from exc
    register = getattr(module, HOOK, None)
    if not callable(register):
        raise ConfigurationError(
            f"plugin module {name!r} has no {HOOK}(plugins) function: {OFFLOAD_APP} names "
            "modules that register their feeds and collections"
        )
    try:
        register(plugins)
    except Exception as exc:
        raise ConfigurationError(f"plugin module {name!r} failed to register: {exc}") from exc
