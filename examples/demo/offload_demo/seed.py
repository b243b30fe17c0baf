"""The demo's data, for the local stack and `offload-demo seed`: products, matches, releases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from offload.collections import Collection
from offload.collections.entities import EntityStore
from offload.collections.store import CollectionStore
from offload.config import Settings
from offload_demo.catalog import DEMO_PRODUCTS, product_records, seed_products
from offload_demo.matches import MATCHES
from offload_demo.releases import RELEASES

DEMO_USERS = ("42", "17", "7", "99")
LIVE_MATCH = "m-1013"
_FIRST_FINISH = datetime(2026, 11, 1, 18, 0, tzinfo=UTC)
_MAPS = ("harbour", "foundry", "canyon", "orbit")
DEMO_REPOS = ("offload", "edge")
DRAFT_RELEASE = "r-offload-next"
_FIRST_PUBLISHED = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


def seed(settings: Settings, *, products: int = DEMO_PRODUCTS) -> None:
    """Everything the demo serves, written idempotently into the bound table."""
    seed_products(product_records(products))
    seed_matches(settings)
    seed_releases(settings)


def demo_matches() -> list[dict]:
    """Twelve finished matches among the demo users, and one still being played."""
    matches: list[dict] = []
    for number in range(12):
        home = DEMO_USERS[number % len(DEMO_USERS)]
        away = DEMO_USERS[(number + 1 + number // len(DEMO_USERS)) % len(DEMO_USERS)]
        finished = _FIRST_FINISH + timedelta(days=number, minutes=7 * number)
        matches.append(
            {
                "id": f"m-{1001 + number}",
                "players": [home, away],
                "finished_at": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "winner": home if number % 3 else away,
                "score": [3, number % 3],
                "map": _MAPS[number % len(_MAPS)],
            }
        )
    matches.append({"id": LIVE_MATCH, "players": ["42", "99"], "finished_at": None, "map": "orbit"})
    return matches


def demo_releases() -> list[dict]:
    """Four published releases of each demo repository, and one draft."""
    releases: list[dict] = []
    for repo in DEMO_REPOS:
        for minor in range(4):
            published = _FIRST_PUBLISHED + timedelta(weeks=3 * minor, hours=len(repo))
            releases.append(
                {
                    "id": f"r-{repo}-1-{minor}",
                    "repo": repo,
                    "published_at": published.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "name": f"v1.{minor}",
                    "notes": f"{repo} 1.{minor}",
                }
            )
    releases.append({"id": DRAFT_RELEASE, "repo": "offload", "published_at": None, "name": "v2.0"})
    return releases


def seed_matches(settings: Settings) -> dict[str, str]:
    """Record the demo matches (idempotently) and return each demo user's version."""
    return _record(settings, MATCHES, demo_matches(), DEMO_USERS)


def seed_releases(settings: Settings) -> dict[str, str]:
    """Record the demo releases (idempotently) and return each demo repository's version."""
    return _record(settings, RELEASES, demo_releases(), DEMO_REPOS)


def _record(
    settings: Settings, collection: Collection, records: list[dict], owners: tuple[str, ...]
) -> dict[str, str]:
    store = CollectionStore.for_settings(settings)
    entities = EntityStore(store)
    for record in records:
        entities.record(collection, record)
    return {owner: store.version(collection.of(owner)) for owner in owners}
