"""Usage per client and feed, counted on the rate counter's item by the write it already gets.

A request's own write can count the request, but not its outcome: the write is sent with the
request's first reads, before anyone knows whether the answer is a hit, a miss or a 304. So
each outcome is tallied in the container and added to that client's next counted write in the
same container (`pending` hands the tally out, `restore` takes it back when that write is
refused). An outcome is therefore counted in the window of the client's next request, and a
container that is retired takes the outcomes of its last requests of each client with it;
the audit log has every issued link exactly.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from offload.table import RateCounter, dynamodb_client, table_name

# The rate counter item's usage attributes: `u:<feed>:<field>`.
PREFIX = "u:"
# Requests refused before their feed was known (a malformed path) are counted under this.
NO_FEED = "-"


class Field(StrEnum):
    """What is counted per client, feed and window."""

    REQUESTS = "requests"
    HITS = "hits"
    MISSES = "misses"
    NOT_MODIFIED = "not_modified"
    RATE_LIMITED = "rate_limited"
    BYTES = "bytes"


def attribute(feed: str, field: Field) -> str:
    """The counter item's attribute holding one count."""
    return f"{PREFIX}{feed}:{field.value}"


def parse_attribute(name: str) -> tuple[str, Field] | None:
    """The feed and field an attribute counts; None for the item's other attributes."""
    if not name.startswith(PREFIX):
        return None
    feed, _, field = name.removeprefix(PREFIX).rpartition(":")
    try:
        return feed, Field(field)
    except ValueError:
        return None


Tally = Counter[tuple[str, Field]]


class Pending:
    """Outcomes this container has seen and not yet written, per client."""

    def __init__(self) -> None:
        self._tallies: dict[str, Tally] = {}
        self._lock = threading.Lock()

    def add(self, client_id: str, feed: str, counts: Mapping[Field, int]) -> None:
        """Remember outcomes for the client's next counted write."""
        with self._lock:
            tally = self._tallies.setdefault(client_id, Counter())
            for field, value in counts.items():
                if value:
                    tally[(feed, field)] += value

    def take(self, client_id: str) -> Tally:
        """Hand out the client's tally for a write; `restore` it if the write fails."""
        with self._lock:
            return self._tallies.pop(client_id, Counter())

    def restore(self, client_id: str, tally: Tally) -> None:
        """Give back a tally whose write did not happen."""
        if not tally:
            return
        with self._lock:
            self._tallies.setdefault(client_id, Counter()).update(tally)

    def clear(self) -> None:
        with self._lock:
            self._tallies.clear()


PENDING = Pending()


def update_parts(tally: Tally) -> tuple[str, dict[str, str], dict[str, dict[str, str]]]:
    """`ADD` clauses, names and values that count `tally` in an UpdateItem."""
    clauses: list[str] = []
    names: dict[str, str] = {}
    values: dict[str, dict[str, str]] = {}
    for index, ((feed, field), count) in enumerate(sorted(tally.items())):
        names[f"#u{index}"] = attribute(feed, field)
        values[f":u{index}"] = {"N": str(count)}
        clauses.append(f"#u{index} :u{index}")
    return ", ".join(clauses), names, values


@dataclass(frozen=True, slots=True)
class Row:
    """One client's use of one feed in one period, as `offload usage` reports it."""

    client: str
    feed: str
    period: str
    requests: int = 0
    hits: int = 0
    misses: int = 0
    not_modified: int = 0
    rate_limited: int = 0
    bytes: int = 0

    def document(self) -> dict[str, str | int]:
        return {
            "client": self.client,
            "feed": self.feed,
            "period": self.period,
            **{field.value: getattr(self, field.value) for field in Field},
        }


def counts_of(item: Mapping[str, Any]) -> Iterator[tuple[str, Field, int]]:
    """The usage counts a rate counter item holds (PynamoDB-free: a raw or plain item)."""
    for name, value in item.items():
        parsed = parse_attribute(name)
        if parsed is None:
            continue
        number = value["N"] if isinstance(value, Mapping) else value
        yield parsed[0], parsed[1], int(number)


def rows(
    windows: Iterable[tuple[str, str, Mapping[str, Any]]],
    *,
    feed: str | None = None,
) -> list[Row]:
    """Sum `(client, period, item)` triples into one row per client, feed and period."""
    sums: dict[tuple[str, str, str], Counter[Field]] = {}
    for client, period, item in windows:
        for counted_feed, field, value in counts_of(item):
            if feed is not None and counted_feed != feed:
                continue
            sums.setdefault((client, counted_feed, period), Counter())[field] += value
    return [
        Row(client, counted_feed, period, **{f.value: counts[f] for f in Field})
        for (client, counted_feed, period), counts in sorted(sums.items())
    ]


class By(StrEnum):
    """The period a report sums windows into."""

    HOUR = "hour"
    DAY = "day"

    def period(self, window_start: int) -> str:
        """The period a window belongs to, by its start (UTC)."""
        start = datetime.fromtimestamp(window_start, tz=UTC)
        if self is By.DAY:
            return start.date().isoformat()
        return start.strftime("%Y-%m-%dT%H:00Z")


def report(
    *,
    since: float,
    by: By = By.DAY,
    client: str | None = None,
    feed: str | None = None,
) -> list[Row]:
    """Usage rows from the rate counters of windows that started at or after `since`.

    The counters are keyed by client and window, so this scans the table (an operator's
    command, not a request path): its cost grows with the table, not with the report.
    """
    prefix = RateCounter.key_for(client, 0).removesuffix("0") if client else "RATE#"
    pages = (
        dynamodb_client()
        .get_paginator("scan")
        .paginate(
            TableName=table_name(),
            FilterExpression="#sk = :sk AND begins_with(#pk, :prefix)",
            ExpressionAttributeNames={
                "#sk": RateCounter.sk.attr_name,
                "#pk": RateCounter.pk.attr_name,
            },
            ExpressionAttributeValues={":sk": {"S": RateCounter.SORT}, ":prefix": {"S": prefix}},
        )
    )
    windows = []
    for page in pages:
        for item in page.get("Items", []):
            parsed = RateCounter.window_of(item[RateCounter.pk.attr_name]["S"])
            if parsed is None or parsed[1] < since:
                continue
            windows.append((parsed[0], by.period(parsed[1]), item))
    return rows(windows, feed=feed)
