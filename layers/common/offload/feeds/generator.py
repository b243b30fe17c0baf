"""Running a feed's generator: in its own thread, within the feed's timeout, measured."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from offload.errors import DependencyUnavailable, GenerationFailed, GenerationTimedOut, OffloadError
from offload.feeds.base import GenerationRequest
from offload.feeds.cachekey import FeedRequest
from offload.observability import logger, metrics


def generate(request: FeedRequest) -> bytes:
    """The whole file for `request`; otherwise GenerationTimedOut, DependencyUnavailable
    when the AWS service it reads from failed (worth retrying), or GenerationFailed."""
    feed = request.feed
    started = time.perf_counter()
    job = GenerationRequest(
        feed=feed.name,
        format=request.format,
        client_id=request.owner,
        params=dict(request.params),
    )
    try:
        data = _run_with_timeout(feed.generate, job, feed.generation_timeout_seconds)
    except FutureTimeout as exc:
        raise GenerationTimedOut(
            f"feed {feed.name!r} took longer than {feed.generation_timeout_seconds} s"
        ) from exc
    except OffloadError:
        raise
    except (BotoCoreError, ClientError, PynamoDBException) as exc:
        # An outage or a throttle of what the generator reads, not a fault of the feed's.
        logger.warning("generator's AWS dependency failed", extra={"feed": feed.name})
        raise DependencyUnavailable(
            f"feed {feed.name!r} could not read its data; retry shortly"
        ) from exc
    except Exception as exc:
        logger.exception("generator failed", extra={"feed": feed.name})
        raise GenerationFailed(f"feed {feed.name!r} could not be generated") from exc
    metrics.add_metric(
        name="GenerationTime",
        unit=MetricUnit.Milliseconds,
        value=(time.perf_counter() - started) * 1000,
    )
    return data


def _run_with_timeout(
    fn: Callable[[GenerationRequest], bytes], job: GenerationRequest, timeout: float
) -> bytes:
    """Run a generator in its own thread so a slow one can be abandoned at the deadline."""
    result: Future[bytes] = Future()

    def target() -> None:
        try:
            result.set_result(fn(job))
        except BaseException as exc:  # handed to the caller through the future
            result.set_exception(exc)

    threading.Thread(target=target, name="offload-generator", daemon=True).start()
    return result.result(timeout=timeout)
