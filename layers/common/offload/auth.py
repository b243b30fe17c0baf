"""API keys: extraction from a request, SHA-256 hashing, lookup and scope checks (managing
keys is `offload.api_keys`)."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from pynamodb.exceptions import UpdateError

from offload.errors import Forbidden, Unauthorized
from offload.table import ApiClient, condition_failed

SCOPE_FEEDS = "feeds"
SCOPE_ADMIN = "admin"
SCOPES = frozenset({SCOPE_FEEDS, SCOPE_ADMIN})
KEY_PREFIX = "ofl_"
KEY_HEADER = "x-api-key"
KEY_QUERY = "key"
# Client ids appear in object keys and cache keys, so they are slugs.
CLIENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
# A container records a key's last use at most this often, on the read it makes anyway.
LAST_USE_SECONDS = 60.0
# Keys (sent ones, unknown included) whose last write a container remembers.
MAX_RECORDED = 10_000
# Unknown keys a container remembers at most (each a 64-character hash and a time).
MAX_UNKNOWN = 10_000


@dataclass(frozen=True, slots=True)
class Client:
    """An authenticated caller: its key's scopes, and its client's limit (every key of a
    client shares it and one counter)."""

    client_id: str
    scopes: frozenset[str]
    hourly_limit: int
    # When the key stops working (epoch seconds), if it was given an expiry.
    valid_until: float | None = None

    def expired(self, now: float) -> bool:
        return self.valid_until is not None and now >= self.valid_until


def hash_key(key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


def extract_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key from `X-Api-Key`, `Authorization: Bearer`, or `?key=`, in that order."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if key := lowered.get(KEY_HEADER, "").strip():
        return key
    scheme, _, credentials = lowered.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return query.get(KEY_QUERY, "").strip() or None


class ClientCache:
    """Client records cached in a warm container; a revocation applies within `ttl` seconds.

    Unknown keys are remembered too (a flood of made-up keys costs one read each per
    `ttl`), but apart and at most MAX_UNKNOWN of them, the oldest forgotten first: junk
    keys can neither grow the container's memory nor push out the clients that exist.
    """

    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.time) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, Client]] = {}
        self._unknown: OrderedDict[str, float] = OrderedDict()
        # When this container last wrote each key's last use (its clock's time).
        self._recorded: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> Client | None:
        now = self._clock()
        with self._lock:
            cached = self._entries.get(key_hash)
            unknown_since = self._unknown.get(key_hash)
        if cached and now - cached[0] < self._ttl:
            return cached[1]
        if unknown_since is not None and now - unknown_since < self._ttl:
            return None
        with self._lock:
            record_use = now - self._recorded.get(key_hash, -LAST_USE_SECONDS) >= LAST_USE_SECONDS
            if record_use:
                if len(self._recorded) >= MAX_RECORDED:
                    self._recorded.clear()  # a few early writes beat unbounded memory
                self._recorded[key_hash] = now
        # The read is a write once a minute: the last use costs no call of its own.
        client = _load_and_mark(key_hash, now) if record_use else _load(key_hash)
        with self._lock:
            if client is None:
                self._entries.pop(key_hash, None)
                self._unknown[key_hash] = now
                self._unknown.move_to_end(key_hash)
                while len(self._unknown) > MAX_UNKNOWN:
                    self._unknown.popitem(last=False)
            else:
                self._unknown.pop(key_hash, None)
                self._entries[key_hash] = (now, client)
        return client

    def __len__(self) -> int:
        """How many keys, known or unknown, the cache holds."""
        with self._lock:
            return len(self._entries) + len(self._unknown)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._recorded.clear()
            self._unknown.clear()


def authenticate(key: str | None, scope: str, cache: ClientCache) -> Client:
    """The client owning `key` if it may use `scope`; Unauthorized or Forbidden otherwise."""
    if not key:
        raise Unauthorized("send an API key in X-Api-Key, Authorization: Bearer, or ?key=")
    client = cache.get(hash_key(key))
    if client is None:
        raise Forbidden("the API key is unknown or revoked")
    if client.expired(time.time()):
        expired = datetime.fromtimestamp(client.valid_until or 0, tz=UTC)
        raise Forbidden(f"the API key expired at {expired.isoformat(timespec='seconds')}")
    if scope not in client.scopes:
        raise Forbidden(f"the API key lacks the {scope!r} scope")
    return client


def _load(key_hash: str) -> Client | None:
    try:
        record = ApiClient.get(ApiClient.key_for(key_hash), ApiClient.SORT)
    except ApiClient.DoesNotExist:
        return None
    return _client_of(record)


def _load_and_mark(key_hash: str, now: float) -> Client | None:
    """`_load` as an UpdateItem that also records the key's last use."""
    record = ApiClient(ApiClient.key_for(key_hash), ApiClient.SORT)
    try:
        record.update(
            actions=[ApiClient.last_used_at.set(int(now))],
            condition=ApiClient.pk.exists(),
        )
    except UpdateError as exc:
        if condition_failed(exc):
            return None
        raise
    return _client_of(record)


def _client_of(record: ApiClient) -> Client | None:
    if record.disabled:
        return None
    # The client's limit, copied onto each of its keys: authenticating stays one read.
    return Client(
        client_id=record.client_id,
        scopes=frozenset(record.scopes),
        hourly_limit=int(record.hourly_limit),
        valid_until=None if record.valid_until is None else float(record.valid_until),
    )
