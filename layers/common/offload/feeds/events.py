"""EventBridge events a background generation publishes when it ends, so nobody must poll.

One event per generation that stored a file or failed (a superseded one, which did nothing,
publishes none), on the configured bus (`EVENT_BUS_NAME`, default the account's default
bus): source `offload`, detail type `Feed generation ended`, and a detail of the feed, the
client, the generation id, the outcome, the duration and, when stored, the file's size and
object key. A publication that fails is logged and counted; the generation stands.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from offload.observability import logger, metrics

SOURCE = "offload"
DETAIL_TYPE = "Feed generation ended"


class Ended(StrEnum):
    """How a generation the event reports on ended."""

    STORED = "stored"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class GenerationEnded:
    """The detail of one event."""

    feed: str
    format: str
    client: str
    generation_id: str
    outcome: Ended
    duration_ms: int
    object_key: str | None = None
    size: int | None = None
    # The file's SHA-256, where the generation records one.
    digest: str | None = None
    # The failure's name (GenerationFailed, GenerationTimedOut, ...) when it failed.
    error: str | None = None

    def detail(self) -> dict[str, Any]:
        """The event's detail: the fields that are known, none set to null."""
        fields = {
            "feed": self.feed,
            "format": self.format,
            "client": self.client,
            "generation_id": self.generation_id,
            "outcome": self.outcome.value,
            "duration_ms": self.duration_ms,
            "object_key": self.object_key,
            "size": self.size,
            "digest": self.digest,
            "error": self.error,
        }
        return {name: value for name, value in fields.items() if value is not None}


def publish(events: Callable[[], Any], bus: str, ended: GenerationEnded) -> bool:
    """Put the event on `bus` (`events` makes the EventBridge client); whether it went."""
    entry = {
        "Source": SOURCE,
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(ended.detail()),
        "EventBusName": bus,
    }
    try:
        answer = events().put_events(Entries=[entry])
    except (BotoCoreError, ClientError):
        logger.warning("could not publish the generation event", exc_info=True)
        answer = {"FailedEntryCount": 1}
    if answer.get("FailedEntryCount"):
        logger.warning("the generation event was not published", extra={"answer": answer})
        metrics.add_metric(name="GenerationEventFailures", unit=MetricUnit.Count, value=1)
        return False
    return True
