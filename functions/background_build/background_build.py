"""Generates feed files too slow for API Gateway's 30 s, started by the feeds function."""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext

from offload.feeds.background_build import BackgroundJob, run
from offload.observability import logger, metrics, tracer
from offload.plugins import load_plugins
from offload.runtime import get_runtime

runtime = get_runtime()
plugins = load_plugins(runtime.settings.app_modules)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    job = BackgroundJob.of_event(event, plugins.feeds)
    logger.append_keys(feed=job.request.feed.name, object_key=job.generation.object_key)
    finished = run(job, runtime)
    logger.info("background generation ended", extra={"finished": finished})
    return {"finished": finished.value, "object_key": job.generation.object_key}
