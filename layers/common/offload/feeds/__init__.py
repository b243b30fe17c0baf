"""Feed plugins. Adding a feed is one module and one `REGISTRY.register` line here."""

from offload.feeds.base import Feed, GenerationRequest, Parameter
from offload.feeds.catalog import CATALOG, EXPORT
from offload.feeds.registry import REGISTRY
from offload_demo.origin_feeds import PRICE_LIST

REGISTRY.register(CATALOG)
REGISTRY.register(EXPORT)
REGISTRY.register(PRICE_LIST)  # the OFFLOAD_APP plugin loader replaces this import

__all__ = ["REGISTRY", "Feed", "GenerationRequest", "Parameter"]
