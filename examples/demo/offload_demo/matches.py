"""The demo's matches: `users/{id}/matches` lists `/matches/{id}`, newest finish first."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from offload.collections.base import Collection, Record, check_id
from offload.errors import InvalidRequest

MAX_PLAYERS = 100
REQUIRED = ("id", "players", "finished_at")


def parse_match(document: Mapping[str, Any]) -> Record:
    """A match from `{"id", "players", "finished_at", ...}`; further fields are kept.

    `finished_at` is ISO-8601 in UTC, or null for a match still being played (stored,
    listed nowhere, and replaceable until it is finished).
    """
    missing = [name for name in REQUIRED if name not in document]
    if missing:
        raise InvalidRequest(f"a match needs {', '.join(missing)}")
    match_id = check_id(document["id"], "match id")
    players = document["players"]
    if not isinstance(players, list) or not 1 <= len(players) <= MAX_PLAYERS:
        raise InvalidRequest(f'"players" must be a list of 1 to {MAX_PLAYERS} user ids')
    owners = tuple(check_id(player, "each player") for player in players)
    if len(set(owners)) != len(owners):
        raise InvalidRequest('"players" lists a user twice')
    finished_at = document["finished_at"]
    order_key = None if finished_at is None else _order_key(finished_at)
    return Record(entity_id=match_id, body=document, owners=owners, order_key=order_key)


def _order_key(value: object) -> str:
    """The finish time as fixed-width UTC text, so that text order is time order."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() != timedelta(0):
        raise InvalidRequest(
            '"finished_at" must be an ISO-8601 time in UTC, e.g. 2026-11-21T18:04:00Z'
        )
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


MATCHES = Collection(
    name="matches",
    owner="users",
    ids_field="match_ids",
    entity="match",
    parse=parse_match,
)
