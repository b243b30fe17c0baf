"""Feed plugins. Adding a feed is one module and one `REGISTRY.register` line here."""

from offload.feeds.base import Feed, GenerationRequest, Parameter
from offload.feeds.catalog import CATALOG, EXPORT
from offload.feeds.registry import REGISTRY

REGISTRY.register(CATALOG)
REGISTRY.register(EXPORT)

__all__ = ["REGISTRY", "Feed", "GenerationRequest", "Parameter"]
