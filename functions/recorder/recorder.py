"""S3 object events: point cache entries at new uploads, drop them for removed objects."""

from __future__ import annotations

from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from offload.observability import logger, metrics, tracer
from offload.plugins import load_plugins
from offload.recorder import record_created, record_removed
from offload.runtime import get_runtime

runtime = get_runtime()
# Recording serves no plugin, but a deployment whose plugins are broken fails every
# function alike, at its cold start.
load_plugins(runtime.settings.app_modules)


class RecordingFailed(Exception):
    """Some records failed; raising makes Lambda retry the event, then dead-letter it."""


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=S3Event)
def lambda_handler(event: S3Event, context: LambdaContext) -> dict:
    outcomes: list[str] = []
    failed: list[str] = []
    records = list(event.records)
    for record in records:
        bucket = record.s3.bucket.name
        key = unquote_plus(record.s3.get_object.key)
        try:
            if record.event_name.startswith("ObjectCreated"):
                outcome = record_created(runtime.s3, bucket, key)
            else:
                outcome = record_removed(key)
        except Exception:
            logger.exception("could not record", extra={"key": key})
            failed.append(key)
            continue
        logger.info("recorded", extra={"key": key, "event": record.event_name, "outcome": outcome})
        outcomes.append(outcome.value)
    if failed:
        # Recording is idempotent, so retrying the whole event is safe.
        raise RecordingFailed(f"{len(failed)} of {len(records)} records failed")
    return {"recorded": outcomes}
