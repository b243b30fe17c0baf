"""Versioned collections: a short-lived pointer, immutable snapshots and entities.

Adding a collection is one module (see `matches.py`) and one `REGISTRY.register` line here.
"""

from offload.collections.base import Collection, CollectionRef, CollectionRegistry, Record
from offload.collections.matches import MATCHES

REGISTRY = CollectionRegistry()
REGISTRY.register(MATCHES)

__all__ = ["MATCHES", "REGISTRY", "Collection", "CollectionRef", "CollectionRegistry", "Record"]
