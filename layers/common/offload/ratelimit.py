"""Per-client fixed-window rate limiting: one atomic conditional update per counted request."""

from __future__ import annotations

import math
from dataclasses import dataclass

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from offload import usage
from offload.auth import Client
from offload.errors import RateLimited
from offload.observability import metrics
from offload.table import RateCounter, dynamodb_client, item_key, table_name
from offload.usage import Field

# Windows this container has seen a client spend: (client, window start, limit). A window's
# count only grows, so every later request in it is over the limit too and is refused
# without a write: a client flooding past its limit costs its counter item (1,000 writes
# a second at most) one write per container and window instead of one per request. The
# limit is in the key, so a changed limit, once the key's record is read again, counts.
_spent: set[tuple[str, int, int]] = set()
MAX_SPENT = 10_000

# Every request makes this one write, so it goes through botocore as is: PynamoDB's
# expression building cost about 0.1 ms of CPU a call (bench/cpu.py). RateCounter keeps
# the item's shape; these are its attributes' names. The same write counts the client's
# usage (offload.usage): this request, and the outcomes of its earlier ones.
CONDITION_FAILED = "ConditionalCheckFailedException"
_HITS = RateCounter.hits.attr_name
_NAMES = {"#hits": _HITS, "#expires": RateCounter.expires_at.attr_name}
_CONDITION = "attribute_not_exists(#hits) OR #hits < :limit"
_REFUSED = {Field.REQUESTS: 1, Field.RATE_LIMITED: 1}


@dataclass(frozen=True, slots=True)
class RateStatus:
    """Where a client stands in its current window."""

    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        """The RateLimit-* headers every answer to the client carries."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


def scaled_limit(hourly_limit: int, window_seconds: int) -> int:
    """The client's hourly allowance expressed for a window of another length."""
    return max(1, math.floor(hourly_limit * window_seconds / 3600))


@dataclass(frozen=True, slots=True)
class _Window:
    """One client's current fixed window: its limit, bounds and the seconds left."""

    client_id: str
    limit: int
    seconds: int
    start: int
    reset: int

    @classmethod
    def of(cls, client: Client, window_seconds: int, now: float) -> _Window:
        start = int(now // window_seconds * window_seconds)
        return cls(
            client_id=client.client_id,
            limit=scaled_limit(client.hourly_limit, window_seconds),
            seconds=window_seconds,
            start=start,
            reset=max(1, math.ceil(start + window_seconds - now)),
        )

    @property
    def spent_key(self) -> tuple[str, int, int]:
        return (self.client_id, self.start, self.limit)

    def refused(self) -> RateLimited:
        metrics.add_metric(name="RateLimited", unit=MetricUnit.Count, value=1)
        status = RateStatus(limit=self.limit, remaining=0, reset_seconds=self.reset)
        return RateLimited(
            f"{self.limit} requests per {self.seconds} s; the window resets in {self.reset} s",
            headers=status.headers(),
            retry_after=self.reset,
        )


def refuse_if_spent(
    client: Client, *, window_seconds: int, now: float, feed: str = usage.NO_FEED
) -> None:
    """Raise RateLimited, without any AWS call, if this container saw the window spent.

    Called before a request's first round, so a client flooding past its limit costs no
    read, HEAD or write at all, only its authentication. Its usage waits for a later write.
    """
    window = _Window.of(client, window_seconds, now)
    if window.spent_key in _spent:
        usage.PENDING.add(client.client_id, feed, _REFUSED)
        raise window.refused()


def consume(
    client: Client,
    *,
    window_seconds: int,
    now: float,
    feed: str = usage.NO_FEED,
    retention_seconds: int = 0,
) -> RateStatus:
    """Count one request; raise RateLimited (with headers) when the window is spent.

    The write also counts the request under `feed`, with the outcomes this container has
    seen of the client's earlier requests, and keeps the item `retention_seconds` (at least
    one window beyond its own) for `offload usage`.
    """
    window = _Window.of(client, window_seconds, now)
    if window.spent_key in _spent:
        usage.PENDING.add(client.client_id, feed, _REFUSED)
        raise window.refused()
    tally = usage.PENDING.take(client.client_id)
    tally[(feed, Field.REQUESTS)] += 1
    adds, names, values = usage.update_parts(tally)
    try:
        answer = dynamodb_client().update_item(
            TableName=table_name(),
            Key=item_key(RateCounter.key_for(client.client_id, window.start), RateCounter.SORT),
            UpdateExpression=f"ADD #hits :one, {adds} SET #expires = :expires",
            ConditionExpression=_CONDITION,
            ExpressionAttributeNames=_NAMES | names,
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":limit": {"N": str(window.limit)},
                # Kept one extra window so a late reader still finds the count.
                ":expires": {"N": str(window.start + max(2 * window_seconds, retention_seconds))},
                **values,
            },
            ReturnValues="UPDATED_NEW",
        )
    except ClientError as exc:
        usage.PENDING.restore(client.client_id, tally)  # this request's count included
        if exc.response.get("Error", {}).get("Code") != CONDITION_FAILED:
            raise
        usage.PENDING.add(client.client_id, feed, {Field.RATE_LIMITED: 1})
        if len(_spent) >= MAX_SPENT:
            _spent.clear()  # a few extra writes beat unbounded memory
        _spent.add(window.spent_key)
        raise window.refused() from exc
    hits = int(answer["Attributes"][_HITS]["N"])
    return RateStatus(
        limit=window.limit, remaining=max(0, window.limit - hits), reset_seconds=window.reset
    )
