"""What a collection declares, how it is addressed, and the format of its versions."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from offload.errors import InvalidRequest
from offload.registry import Registry

# User and entity ids: one URL path segment, no dots, no encoding surprises, bounded.
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
# A version is milliseconds since the Unix epoch as a decimal string, strictly greater than
# the version before it: max(now_ms, previous + 1). It is opaque to clients.
VERSION = re.compile(r"[1-9][0-9]{0,18}")
# A page is named by the SHA-256 of its content (see `store.page_id`), in hex.
PAGE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Record:
    """An entity as a request described it: its id, canonical body and the lists it joins.

    `order_key` sorts as text in time order (newest listed first); an entity without one is
    not final yet, so it joins no list and may still change.
    """

    entity_id: str
    body: Mapping[str, Any]
    owners: tuple[str, ...]
    order_key: str | None

    @property
    def final(self) -> bool:
        return self.order_key is not None


@dataclass(frozen=True, slots=True)
class Collection:
    """A kind of per-owner list, e.g. `users/{id}/matches` listing `/matches/{id}` entities."""

    name: str
    owner: str
    ids_field: str
    entity: str
    parse: Callable[[Mapping[str, Any]], Record]
    max_entity_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        for value in (self.name, self.owner, self.entity):
            if not NAME.fullmatch(value):
                raise ValueError(f"collection name part {value!r} is not a lower-case name")

    def of(self, owner_id: str) -> CollectionRef:
        """The collection of one owner; InvalidRequest when the id is malformed."""
        return CollectionRef(self, check_id(owner_id, f"{self.owner} id"))

    def entity_path(self, entity_id: str) -> str:
        return f"/{self.name}/{entity_id}"


@dataclass(frozen=True, slots=True)
class CollectionRef:
    """One owner's collection, e.g. users/42/matches."""

    collection: Collection
    owner_id: str

    @property
    def path(self) -> str:
        return f"{self.collection.owner}/{self.owner_id}/{self.collection.name}"

    @property
    def partition(self) -> str:
        return f"COLLECTION#{self.path}"

    def index_url(self, version: str) -> str:
        return f"/{self.path}/index?version={version}"

    def page_url(self, page_id: str) -> str:
        return f"/{self.path}/pages/{page_id}"


class CollectionRegistry(Registry[tuple[str, str], Collection]):
    """The collections this deployment serves, by owner kind and name."""

    def __init__(self) -> None:
        super().__init__("collection", lambda collection: (collection.owner, collection.name))

    def resolve(self, path: object) -> CollectionRef:
        """`users/42/matches` as a collection reference; InvalidRequest otherwise."""
        parts = path.split("/") if isinstance(path, str) else []
        if len(parts) != 3:
            raise InvalidRequest('a collection is named like "users/42/matches"')
        owner, owner_id, name = parts
        collection = self.get((owner, name))
        if collection is None:
            raise InvalidRequest(f"there is no {owner}/…/{name} collection")
        return collection.of(owner_id)


def check_id(value: object, what: str) -> str:
    """`value` if it is a well-formed id; InvalidRequest otherwise."""
    if not isinstance(value, str) or not ID.fullmatch(value):
        raise InvalidRequest(f"{what} must match {ID.pattern}")
    return value


def next_version(previous: str | None, now: float) -> str:
    """The version after `previous`: the clock in ms, but never at or below `previous`."""
    now_ms = int(now * 1000)
    return str(now_ms if previous is None else max(now_ms, int(previous) + 1))


def canonical_json(document: Mapping[str, Any]) -> str:
    """One text per JSON value (sorted keys, no spaces), so equal bodies compare equal."""
    try:
        text = json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError as exc:
        raise InvalidRequest("the body holds a number JSON cannot carry (NaN or infinity)") from exc
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        # JSON lets "\ud800" through; UTF-8, and so any store or client, cannot hold it.
        raise InvalidRequest("the body holds a lone surrogate (\\ud800-\\udfff)") from exc
    return text
