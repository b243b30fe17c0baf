"""The matches collection: `users/{id}/matches` lists `/matches/{id}`, newest finish first.

A match `{"id", "players", "finished_at", ...}` is listed for each of its players;
`finished_at` null is a match still being played (stored, listed nowhere, replaceable until
it is finished). Further fields are kept as part of the match.
"""

from __future__ import annotations

from offload.collections.plugin import Collection

MATCHES = Collection(
    name="matches",
    owner="users",
    entity="match",
    owners_field="players",
    order_field="finished_at",
)
