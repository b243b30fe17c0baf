"""PynamoDB models for Offload's single DynamoDB table (keys `pk`/`sk`, TTL `expires_at`)."""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from pynamodb.attributes import (
    BooleanAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.connection import Connection
from pynamodb.exceptions import PynamoDBException
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model

from offload.config import Settings, default_of
from offload.errors import DependencyUnavailable
from offload.invalidation_scopes import Kind

TTL_ATTRIBUTE = "expires_at"
_CONDITION_FAILED = "ConditionalCheckFailedException"


class TableModel(Model):
    """Shared key schema; the table name is bound from settings at container start."""

    class Meta:
        table_name = "offload-unbound"
        # Replaced by `bind_models` with the settings' values.
        connect_timeout_seconds: float = 5.0
        read_timeout_seconds: float = 5.0
        max_retry_attempts: int = 2

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class ApiClient(TableModel):
    """An API key, stored only as its SHA-256 hash, and the client it belongs to."""

    class Meta(TableModel.Meta):
        pass

    SORT = "CLIENT"

    client_id = UnicodeAttribute()
    key_prefix = UnicodeAttribute()
    scopes = UnicodeSetAttribute()
    # The client's limit (ClientAccount holds it), copied here so that authenticating a
    # request reads one item; `api_keys.set_client_limit` keeps the copies in line.
    hourly_limit = NumberAttribute()
    disabled = BooleanAttribute(default=False)
    created_at = NumberAttribute()
    # Not `expires_at`: the table's TTL would delete the record, and an expired key would
    # then be answered as unknown instead of as expired.
    valid_until = NumberAttribute(null=True)
    # Written by the read that refreshes a container's cached record, at most once a minute.
    last_used_at = NumberAttribute(null=True)

    @staticmethod
    def key_for(key_hash: str) -> str:
        return f"KEY#{key_hash}"


class ClientAccount(TableModel):
    """A client: what all of its keys share. Its hourly limit is counted on one counter per
    window (RateCounter), whichever key a request carries."""

    class Meta(TableModel.Meta):
        pass

    SORT = "ACCOUNT"

    client_id = UnicodeAttribute()
    hourly_limit = NumberAttribute()
    created_at = NumberAttribute()
    updated_at = NumberAttribute()

    @staticmethod
    def key_for(client_id: str) -> str:
        return f"ACCOUNT#{client_id}"


class CacheEntry(TableModel):
    """Points a cache key at its current generated object in S3."""

    class Meta(TableModel.Meta):
        pass

    SORT = "ENTRY"

    cache_id = UnicodeAttribute()
    object_key = UnicodeAttribute()
    generation_id = UnicodeAttribute()
    generated_at = NumberAttribute()
    content_type = UnicodeAttribute()
    size = NumberAttribute()
    # When a conditional rebuild last heard that the file is still right (its source
    # answered 304): its age counts from then; invalidations still compare generated_at.
    renewed_at = NumberAttribute(null=True)
    # What the file's source said identifies it, sent back on a conditional rebuild.
    source_etag = UnicodeAttribute(null=True)
    source_last_modified = UnicodeAttribute(null=True)
    # SHA-256 (base64) of the file, and its gzip copy's digest and size; absent on entries
    # recorded before digests were.
    sha256 = UnicodeAttribute(null=True)
    gzip_sha256 = UnicodeAttribute(null=True)
    gzip_size = NumberAttribute(null=True)

    @staticmethod
    def key_for(cache_id: str) -> str:
        return f"ENTRY#{cache_id}"


class Invalidation(TableModel):
    """The latest hard and soft invalidation times of one scope (global, a feed, a client).

    A scope is kept in `shards()` items with the same times, written in one transaction, so
    that every feed request can read one of them at random: one item serves at most 3,000
    strongly consistent reads a second.
    """

    class Meta(TableModel.Meta):
        pass

    SORT = "INVALIDATION"
    PREFIX = "INVALIDATION#"

    hard_at = NumberAttribute(null=True)
    soft_at = NumberAttribute(null=True)

    @classmethod
    def key_for(cls, scope: str, shard: int = 0) -> str:
        """Shard 0 keeps the key the scope had before it was sharded, so what was recorded
        there still counts; shard k is `INVALIDATION#<scope>#k` (no name holds a `#`)."""
        return f"{cls.PREFIX}{scope}" if shard == 0 else f"{cls.PREFIX}{scope}#{shard}"

    @classmethod
    def scope_of(cls, key: str) -> tuple[str, int]:
        """The scope and shard a partition key names: the inverse of `key_for`."""
        parts = key.removeprefix(cls.PREFIX).split("#")
        # `global` is one part, `feed#<name>` and `client#<id>` two; a shard adds one.
        named = 1 if parts[0] == Kind.GLOBAL else 2
        if len(parts) == named + 1:
            return "#".join(parts[:named]), int(parts[named])
        return "#".join(parts), 0

    @classmethod
    def shards(cls) -> int:
        """Items per scope: the bound settings' INVALIDATION_SHARDS (every writer and reader
        must agree, so it comes from where the table name does)."""
        shards: int = _bound.invalidation_shards if _bound else default_of("invalidation_shards")
        return shards


class RebuildLock(TableModel):
    """A lease on regenerating one cache key; only its owner may release it."""

    class Meta(TableModel.Meta):
        pass

    SORT = "LOCK"

    owner = UnicodeAttribute()
    object_key = UnicodeAttribute()
    started_at = NumberAttribute()
    lease_until = NumberAttribute()
    expires_at = TTLAttribute()
    # Set by a background generation that failed: why, told to requests until the lease ends.
    failure = UnicodeAttribute(null=True)

    @staticmethod
    def key_for(cache_id: str) -> str:
        return f"LOCK#{cache_id}"


class RateCounter(TableModel):
    """Requests of one client in one fixed window."""

    class Meta(TableModel.Meta):
        pass

    SORT = "RATE"

    hits = NumberAttribute()
    expires_at = TTLAttribute()

    @staticmethod
    def key_for(client_id: str, window_start: int) -> str:
        return f"RATE#{client_id}#{window_start}"

    @staticmethod
    def window_of(key: str) -> tuple[str, int] | None:
        """The client and window start a partition key names: the inverse of `key_for`."""
        kind, _, rest = key.partition("#")
        client_id, _, start = rest.rpartition("#")
        if kind != "RATE" or not client_id or not start.isdigit():
            return None
        return client_id, int(start)


ALL_MODELS: tuple[type[TableModel], ...] = (
    ApiClient,
    ClientAccount,
    CacheEntry,
    Invalidation,
    RebuildLock,
    RateCounter,
)


_bound: Settings | None = None
# The one connection (and botocore client) every bound model uses.
_shared: Connection | None = None
_client_lock = threading.Lock()
_M = TypeVar("_M", bound=TableModel)


def cause_code(error: PynamoDBException) -> str | None:
    """DynamoDB's error code behind a PynamoDB error; None for a timeout or a lost connection.

    PynamoDB's own `cause_response_code` fails on those: botocore's timeouts carry no response.
    """
    response = getattr(error.cause, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    return code if isinstance(code, str) else None


def condition_failed(error: PynamoDBException) -> bool:
    """Whether a write failed only because its condition did not hold (a lost race)."""
    return cause_code(error) == _CONDITION_FAILED


def put_unless(dynamodb: Any, item: _M, condition: Condition) -> _M | None:
    """Write `item` if `condition` holds; otherwise leave the table alone and return the item
    that stopped it, which DynamoDB hands back with the failure, so the loser needs no read.

    The condition must hold for an absent item (start it with `X.pk.does_not_exist() | ...`).
    PynamoDB's `save` cannot ask for the old item, hence the raw call with its serialisation.
    """
    model = type(item)
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    request: dict[str, Any] = {
        "TableName": model.Meta.table_name,
        "Item": item.serialize(),
        "ConditionExpression": condition.serialize(names, values),
        "ExpressionAttributeNames": {placeholder: name for name, placeholder in names.items()},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if values:  # DynamoDB refuses an empty map
        request["ExpressionAttributeValues"] = values
    try:
        dynamodb.put_item(**request)
    except dynamodb.exceptions.ConditionalCheckFailedException as exc:
        if raw := exc.response.get("Item"):
            return model.from_raw_data(raw)
        try:
            return model.get(item.pk, item.sk, consistent_read=True)
        except model.DoesNotExist:
            raise DependencyUnavailable("a record changed while it was written; retry") from exc
    return None


def register_model(model: type[_M]) -> type[_M]:
    """Add a model defined elsewhere (a collection's, a plugin's) so `bind_models` binds it too.

    A model registered after the models were bound is bound at once to the same table.
    """
    global ALL_MODELS
    if model not in ALL_MODELS:
        ALL_MODELS = (*ALL_MODELS, model)
        if _bound is not None:
            _bind(model, _bound)
    return model


def bind_models(settings: Settings) -> None:
    """Point every model at the configured table, with timeouts that suit an API.

    Every model shares one connection, so a container makes one DynamoDB client (on its
    first call) instead of a botocore session and client per model: the table is one.
    """
    global _bound, _shared
    _bound, _shared = settings, None
    for model in ALL_MODELS:
        _bind(model, settings)


def table_name() -> str:
    """The table the models are bound to."""
    if _bound is None:
        raise RuntimeError("the models are not bound to a table yet")
    return _bound.table_name


def item_key(pk: str, sk: str) -> dict[str, dict[str, str]]:
    """A key as DynamoDB's low-level API takes it, for calls made without PynamoDB."""
    return {TableModel.pk.attr_name: {"S": pk}, TableModel.sk.attr_name: {"S": sk}}


def shared_connection() -> Connection:
    """The connection every bound model uses, for transactions over their items."""
    if _shared is None:
        raise RuntimeError("the models are not bound to a table yet")
    return _shared


def dynamodb_client() -> Any:
    """The botocore DynamoDB client every model uses, made on first use."""
    if _shared is None:
        raise RuntimeError("the models are not bound to a table yet")
    with _client_lock:  # PynamoDB makes it unlocked: two first calls would make two
        return _shared.client


def connection_options(settings: Settings) -> dict[str, Any]:
    """PynamoDB's timeouts and retries, the same as the runtime's boto3 clients'."""
    return {
        "connect_timeout_seconds": settings.aws_timeout_seconds,
        "read_timeout_seconds": settings.aws_timeout_seconds,
        # PynamoDB counts the retries after the first attempt.
        "max_retry_attempts": settings.aws_max_attempts - 1,
    }


def _bind(model: type[TableModel], settings: Settings) -> None:
    global _shared
    model.Meta.table_name = settings.table_name
    for name, value in connection_options(settings).items():
        setattr(model.Meta, name, value)
    model._connection = None
    table = model._get_connection()  # no client yet: PynamoDB makes it on the first call
    if _shared is None:
        _shared = table.connection
    else:
        table.connection = _shared
