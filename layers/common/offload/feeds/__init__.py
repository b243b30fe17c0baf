"""Feed plugins: a deployment's modules (OFFLOAD_APP, see `offload.plugins`) register them."""

from offload.feeds.plugin import Feed, GenerationRequest, Parameter
from offload.feeds.registry import REGISTRY

__all__ = ["REGISTRY", "Feed", "GenerationRequest", "Parameter"]
