"""Versioned collections: a short-lived pointer, immutable snapshots and entities.

Adding a collection is one module (see `matches.py`) and one `REGISTRY.register` line here.
"""

from offload.collections.base import Collection, CollectionRef, Record, Registry
from offload.collections.matches import MATCHES

REGISTRY = Registry()
REGISTRY.register(MATCHES)

__all__ = ["MATCHES", "REGISTRY", "Collection", "CollectionRef", "Record", "Registry"]
