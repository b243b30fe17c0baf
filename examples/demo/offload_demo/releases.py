"""The releases collection: `repos/{id}/releases` lists `/releases/{id}`, newest first.

A release `{"id", "repo", "published_at", ...}` belongs to one repository, named by its
`repo` field; `published_at` null is a draft (stored, listed nowhere, replaceable until it
is published). Further fields are kept as part of the release. Declared, not coded: the
collections function serves it on its generic routes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from offload.collections import Collection
from offload.collections.entities import EntityStore
from offload.collections.store import CollectionStore
from offload.config import Settings

RELEASES = Collection(
    name="releases",
    owner="repos",
    entity="release",
    owner_field="repo",
    order_field="published_at",
)

DEMO_REPOS = ("offload", "edge")
DRAFT_RELEASE = "r-offload-next"
_FIRST_PUBLISHED = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


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


def seed_releases(settings: Settings) -> dict[str, str]:
    """Record the demo releases (idempotently) and return each demo repository's version."""
    collections = CollectionStore.for_settings(settings)
    entities = EntityStore(collections)
    for release in demo_releases():
        entities.record(RELEASES, release)
    return {repo: collections.version(RELEASES.of(repo)) for repo in DEMO_REPOS}
