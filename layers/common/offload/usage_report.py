"""`offload usage`: the counts `offload.usage` writes on the rate counters, summed per period.

An operator's report, not a request path: no function imports it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from offload.table import RateCounter, dynamodb_client, table_name
from offload.usage import Field, parse_attribute


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
