"""The releases collection: `repos/{id}/releases` lists `/releases/{id}`, newest first.

A release `{"id", "repo", "published_at", ...}` belongs to one repository, named by its
`repo` field; `published_at` null is a draft (stored, listed nowhere, replaceable until it
is published). Further fields are kept as part of the release. Declared, not coded: the
collections function serves it on its generic routes.
"""

from __future__ import annotations

from offload.collections import Collection

RELEASES = Collection(
    name="releases",
    owner="repos",
    entity="release",
    owner_field="repo",
    order_field="published_at",
)
