"""The demo's data, for the local stack and `offload-demo seed`: products, matches, releases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from offload.collections.entities import EntityStore
from offload.collections.store import CollectionStore
from offload.config import Settings
from offload_demo.catalog import DEMO_PRODUCTS, product_records, seed_products
from offload_demo.matches import MATCHES
from offload_demo.releases import seed_releases

DEMO_USERS = ("42", "17", "7", "99")
LIVE_MATCH = "m-1013"
_FIRST_FINISH = datetime(2026, 11, 1, 18, 0, tzinfo=UTC)
_MAPS = ("harbour", "foundry", "canyon", "orbit")


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


def seed_matches(settings: Settings) -> dict[str, str]:
    """Record the demo matches (idempotently) and return each demo user's version."""
    collections = CollectionStore.for_settings(settings)
    entities = EntityStore(collections)
    for match in demo_matches():
        entities.record(MATCHES, match)
    return {user: collections.version(MATCHES.of(user)) for user in DEMO_USERS}
