"""Versioned collections: a short-lived pointer, immutable snapshots and entities.

Adding a collection is one declaration (see `matches.py`) registered in `REGISTRY`; the
collections function serves every registered one on the same routes.
"""

from offload.collections.base import Collection, CollectionRef, CollectionRegistry, Record
from offload.collections.matches import MATCHES

REGISTRY = CollectionRegistry()
REGISTRY.register(MATCHES)

# The plugin loader (OFFLOAD_APP) replaces this import; the module registers its collection.
import offload_demo.releases  # noqa: E402, F401

__all__ = ["MATCHES", "REGISTRY", "Collection", "CollectionRef", "CollectionRegistry", "Record"]
