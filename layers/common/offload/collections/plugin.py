"""What a collection declares, how it is addressed, and the format of its versions."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from offload.errors import InvalidRequest, NotFound
from offload.registry import Registry

# Owner and entity ids: one URL path segment, no dots, no encoding surprises, bounded.
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
    """A kind of per-owner list, declared by the fields of its entities.

    `users/{id}/matches` listing `/matches/{id}`: `name` is the list's name and its
    entities' route (`GET /matches/{id}`, `POST /matches`), `owner` the kind of owner in
    the list's path. Each entity names its owners in one field: a list (`owners_field`, as a
    match's players) or a single id (`owner_field`, as a release's repository). It is listed
    newest first by `order_field`, a UTC time; null there means not final yet (listed
    nowhere, and replaceable). A shape these fields cannot say gives its own `parse`.
    """

    name: str
    owner: str
    entity: str
    order_field: str = ""
    owner_field: str = ""
    owners_field: str = ""
    # The list's key in an index or page answer; `<entity>_ids` unless declared.
    ids_field: str = ""
    max_owners: int = 100
    max_entity_bytes: int = 64 * 1024
    parse: Callable[[Mapping[str, Any]], Record] | None = None

    def __post_init__(self) -> None:
        for value in (self.name, self.owner, self.entity):
            if not NAME.fullmatch(value):
                raise ValueError(f"collection name part {value!r} is not a lower-case name")
        if self.parse is None and (
            not self.order_field or bool(self.owner_field) == bool(self.owners_field)
        ):
            raise ValueError(
                f"collection {self.name!r} declares an order_field and one of owner_field "
                "or owners_field (or its own parse)"
            )
        if not self.ids_field:
            object.__setattr__(self, "ids_field", f"{self.entity.replace('-', '_')}_ids")

    def of(self, owner_id: str) -> CollectionRef:
        """The collection of one owner; InvalidRequest when the id is malformed."""
        return CollectionRef(self, check_id(owner_id, f"{self.owner} id"))

    def entity_path(self, entity_id: str) -> str:
        return f"/{self.name}/{entity_id}"

    def record(self, document: Mapping[str, Any]) -> Record:
        """The entity a request body describes; InvalidRequest when it does not fit."""
        if self.parse is not None:
            return self.parse(document)
        owners_field = self.owners_field or self.owner_field
        missing = [f for f in ("id", owners_field, self.order_field) if f not in document]
        if missing:
            raise InvalidRequest(f"a {self.entity} needs {', '.join(missing)}")
        entity_id = check_id(document["id"], f"{self.entity} id")
        if self.owner_field:
            owners: tuple[str, ...] = (check_id(document[owners_field], f'"{owners_field}"'),)
        else:
            owners = self._owners(document[owners_field])
        moment = document[self.order_field]
        order_key = None if moment is None else order_key_of(moment, self.order_field)
        return Record(entity_id=entity_id, body=document, owners=owners, order_key=order_key)

    def _owners(self, value: object) -> tuple[str, ...]:
        field = self.owners_field
        if not isinstance(value, list) or not 1 <= len(value) <= self.max_owners:
            raise InvalidRequest(
                f'"{field}" must be a list of 1 to {self.max_owners} {self.owner} ids'
            )
        owners = tuple(check_id(owner, f'each of "{field}"') for owner in value)
        if len(set(owners)) != len(owners):
            raise InvalidRequest(f'"{field}" lists an id twice')
        return owners


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


class CollectionRegistry(Registry[str, Collection]):
    """The collections this deployment serves, by name (so one entity route each)."""

    def __init__(self) -> None:
        super().__init__("collection", lambda collection: collection.name)

    def named(self, name: str) -> Collection:
        """The collection whose entities live at `/{name}/...`; NotFound otherwise."""
        collection = self.get(name)
        if collection is None:
            raise NotFound(f"there is no {name!r} collection")
        return collection

    def owned(self, owner: str, name: str) -> Collection:
        """The collection listed at `/{owner}/{id}/{name}`; NotFound otherwise."""
        collection = self.get(name)
        if collection is None or collection.owner != owner:
            raise NotFound(f"there is no {owner}/…/{name} collection")
        return collection

    def resolve(self, path: object) -> CollectionRef:
        """`users/42/matches` as a collection reference; InvalidRequest otherwise."""
        parts = path.split("/") if isinstance(path, str) else []
        if len(parts) != 3:
            raise InvalidRequest('a collection is named like "users/42/matches"')
        owner, owner_id, name = parts
        collection = self.get(name)
        if collection is None or collection.owner != owner:
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


def order_key_of(value: object, field: str) -> str:
    """A UTC time as fixed-width text, so that text order is time order."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() != timedelta(0):
        raise InvalidRequest(
            f'"{field}" must be an ISO-8601 time in UTC, e.g. 2026-11-21T18:04:00Z'
        )
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
