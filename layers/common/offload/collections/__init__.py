"""Versioned collections: a short-lived pointer, immutable snapshots and entities.

A deployment's modules (OFFLOAD_APP, see `offload.plugins`) register the collections it serves.
"""

from offload.collections.plugin import (
    Collection,
    CollectionRef,
    CollectionRegistry,
    Record,
    check_id,
)

REGISTRY = CollectionRegistry()

__all__ = ["REGISTRY", "Collection", "CollectionRef", "CollectionRegistry", "Record", "check_id"]
