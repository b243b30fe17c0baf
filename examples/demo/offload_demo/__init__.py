"""Offload's demo, a plugin package like a team's own: a catalog, a price list from an
origin, users' matches and repositories' releases.

A deployment names it in OFFLOAD_APP (template.yaml's Globals); each function then calls
`register` once, at its cold start. The template builds it into a layer of its own
(DemoLayer), so a team replaces that one layer with its package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from offload_demo.catalog import CATALOG, EXPORT
from offload_demo.matches import MATCHES
from offload_demo.origin_feeds import PRICE_LIST
from offload_demo.releases import RELEASES

if TYPE_CHECKING:
    from offload.config import Settings
    from offload.plugins import Plugins


def register(plugins: Plugins) -> None:
    """Add the demo's feeds and collections to what the deployment serves."""
    plugins.feeds.register(CATALOG)
    plugins.feeds.register(EXPORT)
    plugins.feeds.register(PRICE_LIST)
    plugins.collections.register(MATCHES)
    plugins.collections.register(RELEASES)


def seed(settings: Settings) -> None:
    """The demo data, written when the local stack starts (its seeding hook)."""
    from offload_demo.seed import seed as seed_all  # only the local stack and the CLI seed

    seed_all(settings)
