"""Write units per recorded match: the whole list per version (before) against pages (now).

    .venv/bin/python bench/collection_writes.py [--sizes 100 10000 50000] [--page-size P]

One process, moto in-process, one user per size with n matches already listed; then matches
of that user alone are recorded through `EntityStore.record`, the path of `POST /matches`
(entity, member, version). Every DynamoDB request passes a meter on botocore's
`_make_api_call` (the one door boto3 and PynamoDB share) that sizes each item as DynamoDB
does and counts capacity units as AWS bills them (DynamoDB Developer Guide, "DynamoDB
throughput capacity"; "Item sizes and formats"): a write is 1 unit per started KB of the
item, the larger of its old and new size when it replaces or updates one, and twice that in
a transaction; a strongly consistent read is 1 unit per started 4 KB it reads (a query pays
for whole items, whatever its projection). moto's own ConsumedCapacity is a constant.

Before: `WholeListStore` below, the `_commit` of commit c34d663 (each version re-reads every
member and writes the whole list: inline in the version item up to 350 KB, else in chunks).
Now: `CollectionStore`, the code the functions run. A list is seeded as members plus one
version built from them (the invalidation path), since recording 50,000 matches one at a time
would take hours here; what is measured is only the real recording path.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "TABLE_NAME": "offload-bench",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}
SIZES = (100, 10_000, 50_000)
WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
# Ids like "m-pages0-0000012345" (the list's name, then a number): 19 characters.
ID_FORMAT = "m-{}-{:010d}"
SEEDED_FROM = datetime(2025, 1, 1, tzinfo=UTC)
RECORDED_FROM = datetime(2026, 1, 1, tzinfo=UTC)
# The old store's limits (commit c34d663).
INLINE_BYTES = 350_000
CHUNK_BYTES = 350_000
BEFORE_RECORDINGS = 3


# --- the meter --------------------------------------------------------------------------------


def value_size(value: dict[str, Any]) -> int:
    """Bytes DynamoDB counts for one attribute value."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return number_size(data)
    if kind == "B":
        return len(base64.b64decode(data)) if isinstance(data, str) else len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(item.encode()) for item in data)
    if kind == "NS":
        return sum(number_size(item) for item in data)
    if kind == "L":
        return 3 + sum(1 + value_size(item) for item in data)
    if kind == "M":
        return 3 + sum(len(name.encode()) + 1 + value_size(item) for name, item in data.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def number_size(text: str) -> int:
    # One byte per two significant digits, plus one.
    digits = text.lstrip("-").replace(".", "").strip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def units(size: int, unit: int) -> int:
    return max(1, math.ceil(size / unit))


@dataclass
class Meter:
    """Capacity units of the DynamoDB requests made while it is on."""

    on: bool = False
    writes: int = 0
    reads: int = 0
    bytes_written: int = 0
    calls: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.writes = self.reads = self.bytes_written = 0
        self.calls.clear()

    def install(self) -> None:
        import botocore.client

        original = botocore.client.BaseClient._make_api_call
        meter = self

        def metered(client: Any, operation: str, params: dict) -> Any:
            if not meter.on or client.meta.service_model.service_name != "dynamodb":
                return original(client, operation, params)
            meter.on = False  # the meter's own reads are not counted
            try:
                return meter.call(lambda op, p: original(client, op, p), operation, params)
            finally:
                meter.on = True

        botocore.client.BaseClient._make_api_call = metered  # type: ignore[method-assign]

    def call(self, send: Callable[[str, dict], Any], operation: str, params: dict) -> Any:
        self.calls.append(operation)

        def stored(table: str, key: dict) -> dict | None:
            answer = send("GetItem", {"TableName": table, "Key": key, "ConsistentRead": True})
            return answer.get("Item")

        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            return self._writes(send, (operation, params), [(operation, params)], stored, False)
        if operation == "TransactWriteItems":
            kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}
            items = [
                (kinds.get(kind, "ConditionCheck"), body)
                for entry in params["TransactItems"]
                for kind, body in entry.items()
            ]
            return self._writes(send, (operation, params), items, stored, True)
        if operation == "BatchWriteItem":
            items = [
                ("PutItem", {"TableName": table, "Item": request["PutRequest"]["Item"]})
                if "PutRequest" in request
                else ("DeleteItem", {"TableName": table, "Key": request["DeleteRequest"]["Key"]})
                for table, requests in params["RequestItems"].items()
                for request in requests
            ]
            return self._writes(send, (operation, params), items, stored, False)
        answer = send(operation, params)
        factor = 1 if params.get("ConsistentRead") else 0.5
        if operation == "GetItem":
            self.reads += units(item_size(answer.get("Item")), READ_UNIT_BYTES) * factor
        elif operation == "Query":
            whole = send("Query", _unprojected(params))
            size = sum(item_size(item) for item in whole["Items"])
            self.reads += units(size, READ_UNIT_BYTES) * factor
        return answer

    def _writes(
        self,
        send: Callable[[str, dict], Any],
        request: tuple[str, dict],
        items: list[tuple[str, dict]],
        stored: Callable[[str, dict], dict | None],
        transactional: bool,
    ) -> Any:
        """Send a write request; count each item it writes, as large as before or after."""
        keyed = []
        for operation, body in items:
            key = body.get("Key") or {"pk": body["Item"]["pk"], "sk": body["Item"]["sk"]}
            keyed.append((operation, body, key, stored(body["TableName"], key)))
        answer = send(*request)
        for operation, body, key, before in keyed:
            after = body.get("Item")
            if operation == "UpdateItem":
                after = stored(body["TableName"], key)
            size = max(item_size(before), item_size(after))
            self.bytes_written += size
            self.writes += units(size, WRITE_UNIT_BYTES) * (2 if transactional else 1)
        return answer


def _unprojected(params: dict) -> dict:
    """The same query without its projection: what DynamoDB reads, and bills."""
    query = {
        name: value
        for name, value in params.items()
        if name not in ("ProjectionExpression", "AttributesToGet", "Select")
    }
    used = " ".join(query.get(name, "") for name in ("KeyConditionExpression", "FilterExpression"))
    if names := query.get("ExpressionAttributeNames"):
        query["ExpressionAttributeNames"] = {k: v for k, v in names.items() if k in used}
    return query


# --- the two designs --------------------------------------------------------------------------


def whole_list_store(base_class: type) -> type:
    """The store as of c34d663, as far as recording goes: each version holds the whole list."""
    from pynamodb.transactions import TransactWrite

    from offload.collections.plugin import next_version
    from offload.collections.table import (
        MEMBER_PREFIX,
        CollectionMember,
        CollectionPointer,
        Snapshot,
        SnapshotChunk,
    )
    from offload.etags import entity_tag

    class WholeListStore(base_class):  # type: ignore[misc, valid-type]
        def bump(self, ref: Any, *, entry: Any = None, just_added: bool = False) -> str:
            base = self.current(ref)
            members = CollectionMember.query(
                ref.partition,
                CollectionMember.sk.startswith(MEMBER_PREFIX),
                consistent_read=True,
                scan_index_forward=False,
                attributes_to_get=["entity_id"],
            )
            ids = [member.entity_id for member in members]
            now = time.time()
            version = next_version(base, now)
            body = json.dumps({ref.collection.ids_field: ids}, separators=(",", ":")).encode()
            header = Snapshot(
                ref.partition,
                Snapshot.key_for(version),
                version=version,
                etag=entity_tag(body),
                size=len(body),
                id_count=len(ids),
                created_at=now,
            )
            if len(body) > INLINE_BYTES:
                prefix = f"SNAPSHOT#{version}#{uuid.uuid4().hex[:12]}#"
                header.chunk_prefix = prefix
                header.chunks = math.ceil(len(body) / CHUNK_BYTES)
                with SnapshotChunk.batch_write() as batch:
                    for index, offset in enumerate(range(0, len(body), CHUNK_BYTES)):
                        data = body[offset : offset + CHUNK_BYTES]
                        batch.save(SnapshotChunk(ref.partition, f"{prefix}{index:05d}", data=data))
            else:
                header.body = body
            pointer = CollectionPointer(
                ref.partition, CollectionPointer.SORT, version=version, moved_at=now
            )
            moved_from = (
                CollectionPointer.pk.does_not_exist()
                if base is None
                else CollectionPointer.version == base
            )
            with TransactWrite(connection=self._connection) as transaction:
                transaction.save(header, condition=Snapshot.pk.does_not_exist())
                transaction.save(pointer, condition=moved_from, return_values="ALL_OLD")
            return version

    return WholeListStore


@dataclass
class Result:
    n: int
    writes: list[float]
    reads: list[float]
    bytes_written: list[int]


def measure(store: Any, meter: Meter, user: str, n: int, recordings: int) -> Result:
    """Seed `n` listed matches for `user`, then record `recordings` more, metered each."""
    from offload.collections.entities import EntityStore
    from offload.collections.store import Entry
    from offload_demo.matches import MATCHES

    ref = MATCHES.of(user)
    store.add(
        (ref, Entry(ID_FORMAT.format(user, number), _at(SEEDED_FROM, number)))
        for number in range(n)
    )
    store.bump(ref)  # one version of the whole list, as an invalidation makes it
    entities = EntityStore(store)
    result = Result(n, [], [], [])
    for number in range(n, n + recordings):
        body = {
            "id": ID_FORMAT.format(user, number),
            "players": [user],
            "finished_at": _at(RECORDED_FROM, number).replace(".000000", ""),
        }
        meter.reset()
        meter.on = True
        try:
            recorded = entities.record(MATCHES, body)
        finally:
            meter.on = False
        assert recorded.created and user in recorded.versions
        result.writes.append(meter.writes)
        result.reads.append(meter.reads)
        result.bytes_written.append(meter.bytes_written)
    return result


def _at(start: datetime, number: int) -> str:
    return (start + timedelta(seconds=number)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        help="recordings measured per size with pages (default: one page, so one page fills)",
    )
    parser.add_argument(
        "--page-size", type=int, default=None, help="ids per page (default: PAGE_SIZE, 100)"
    )
    args = parser.parse_args()
    os.environ.update(ENVIRONMENT)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        os.environ.pop(name, None)

    from moto import mock_aws

    from offload.collections import store as pages
    from offload.config import get_settings
    from offload.runtime import get_runtime
    from offload_local.isolation import serialise_dynamodb
    from offload_local.resources import create_resources
    from offload_local.template import Stack, load

    if args.page_size:
        pages.PAGE_SIZE = args.page_size  # read when a store is made
    window = args.window or pages.PAGE_SIZE
    meter = Meter()
    meter.install()
    # Transactions roll back from copies of the items they name, not of the whole table.
    serialise_dynamodb()
    rows = []
    started = time.perf_counter()
    with mock_aws():
        create_resources(Stack(load()), names={"Table": ENVIRONMENT["TABLE_NAME"]})
        get_runtime()  # binds the models to the table
        now = pages.CollectionStore.for_settings(get_settings())
        before = whole_list_store(pages.CollectionStore).for_settings(get_settings())
        for index, n in enumerate(args.sizes):
            old = measure(before, meter, f"whole{index}", n, BEFORE_RECORDINGS)
            new = measure(now, meter, f"pages{index}", n, window)
            rows.append((n, old, new))
            print(f"  n = {n:,}: measured", flush=True)
    elapsed = time.perf_counter() - started

    print(
        f"\nWrite units (WCU) per recorded match, one user's list of n matches; pages of "
        f"{pages.PAGE_SIZE:,} ids; 'now' over the next {window:,} recordings"
    )
    print(
        "| n | before: WCU | now: WCU first, mean, max | before: KB written | now: KB mean "
        "| before: RCU | now: RCU mean | WCU ratio (mean) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, old, new in rows:
        print(
            f"| {n:,} | {statistics.mean(old.writes):,.0f} "
            f"| {new.writes[0]:,.0f}, {statistics.mean(new.writes):,.1f}, {max(new.writes):,.0f} "
            f"| {statistics.mean(old.bytes_written) / 1024:,.1f} "
            f"| {statistics.mean(new.bytes_written) / 1024:,.1f} "
            f"| {statistics.mean(old.reads):,.0f} | {statistics.mean(new.reads):,.1f} "
            f"| {statistics.mean(old.writes) / statistics.mean(new.writes):,.1f}x |"
        )
    print(f"\n({elapsed:.0f} s; ids of {len(ID_FORMAT.format('pages0', 0))} characters)")


if __name__ == "__main__":
    main()
