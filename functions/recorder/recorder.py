"""S3 object events: point cache entries at new uploads, drop them for removed objects."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.typing import LambdaContext

from offload.observability import logger, metrics, tracer
from offload.recorder import record_created, record_removed
from offload.runtime import get_runtime

# Recording serves no feed or collection, so it loads no plugin: a deployment whose plugins
# are broken still records what is uploaded. The notification is read as a dict, not through
# Powertools' `S3Event`, whose package imports its forty-odd event classes at cold start.
runtime = get_runtime()


class RecordingFailed(Exception):
    """Some records failed; raising makes Lambda retry the event, then dead-letter it."""


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict:
    outcomes: list[str] = []
    failed: list[str] = []
    records = event.get("Records") or []
    for record in records:
        event_name: str = record["eventName"]
        bucket: str = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])
        try:
            if event_name.startswith("ObjectCreated"):
                outcome = record_created(runtime.s3, bucket, key)
            else:
                outcome = record_removed(key)
        except Exception:
            logger.exception("could not record", extra={"key": key})
            failed.append(key)
            continue
        logger.info("recorded", extra={"key": key, "event": event_name, "outcome": outcome})
        outcomes.append(outcome.value)
    if failed:
        # Recording is idempotent, so retrying the whole event is safe.
        raise RecordingFailed(f"{len(failed)} of {len(records)} records failed")
    return {"recorded": outcomes}
