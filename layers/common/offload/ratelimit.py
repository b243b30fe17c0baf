"""Per-client fixed-window rate limiting: one atomic conditional update per request."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from aws_lambda_powertools.metrics import MetricUnit
from pynamodb.exceptions import UpdateError

from offload.auth import Client
from offload.errors import RateLimited
from offload.models import RateCounter, condition_failed
from offload.observability import metrics


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


def consume(client: Client, *, window_seconds: int, now: float) -> RateStatus:
    """Count one request; raise RateLimited (with headers) when the window is spent."""
    limit = scaled_limit(client.hourly_limit, window_seconds)
    window_start = int(now // window_seconds * window_seconds)
    window_end = window_start + window_seconds
    reset = max(1, math.ceil(window_end - now))
    counter = RateCounter(RateCounter.key_for(client.client_id, window_start), RateCounter.SORT)
    try:
        counter.update(
            actions=[
                RateCounter.hits.add(1),
                # Kept one extra window so a late reader still finds the count.
                RateCounter.expires_at.set(
                    datetime.fromtimestamp(window_end + window_seconds, tz=UTC)
                ),
            ],
            condition=RateCounter.hits.does_not_exist() | (RateCounter.hits < limit),
        )
    except UpdateError as exc:
        if not condition_failed(exc):
            raise
        metrics.add_metric(name="RateLimited", unit=MetricUnit.Count, value=1)
        status = RateStatus(limit=limit, remaining=0, reset_seconds=reset)
        raise RateLimited(
            f"{limit} requests per {window_seconds} s; the window resets in {reset} s",
            headers=status.headers(),
            retry_after=reset,
        ) from exc
    return RateStatus(limit=limit, remaining=max(0, limit - int(counter.hits)), reset_seconds=reset)
