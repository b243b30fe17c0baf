"""Running a feed's generator: in its own thread, within the feed's timeout, measured."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from offload import storage
from offload.errors import DependencyUnavailable, GenerationFailed, GenerationTimedOut, OffloadError
from offload.feeds.cachekey import FeedRequest
from offload.feeds.plugin import Generated, GenerationRequest, Generator, Unchanged, Validators
from offload.observability import logger, metrics


def generate(request: FeedRequest, previous: Validators | None = None) -> Generated | Unchanged:
    """The whole file for `request`, or Unchanged when the source says the file `previous`
    describes is still right; otherwise GenerationTimedOut, DependencyUnavailable when the
    AWS service it reads from failed (worth retrying), or GenerationFailed."""
    feed = request.feed
    started = time.perf_counter()
    job = GenerationRequest(
        feed=feed.name,
        format=request.format,
        client_id=request.owner,
        params=dict(request.params),
        previous=previous or None,
    )
    try:
        result = _run_with_timeout(feed.generate, job, feed.generation_timeout_seconds)
    except FutureTimeout as exc:
        _failed()
        raise GenerationTimedOut(
            f"feed {feed.name!r} took longer than {feed.generation_timeout_seconds} s"
        ) from exc
    except OffloadError:
        _failed()
        raise
    except (BotoCoreError, ClientError, PynamoDBException) as exc:
        # An outage or a throttle of what the generator reads, not a fault of the feed's.
        logger.warning("generator's AWS dependency failed", extra={"feed": feed.name})
        raise DependencyUnavailable(
            f"feed {feed.name!r} could not read its data; retry shortly"
        ) from exc
    except Exception as exc:
        _failed()
        logger.exception("generator failed", extra={"feed": feed.name})
        raise GenerationFailed(f"feed {feed.name!r} could not be generated") from exc
    if isinstance(result, Unchanged) and job.previous is None:
        # Nothing to renew: a generator may say so only when asked with validators.
        raise GenerationFailed(f"feed {feed.name!r} answered unchanged to an unconditional build")
    metrics.add_metric(
        name="GenerationTime",
        unit=MetricUnit.Milliseconds,
        value=(time.perf_counter() - started) * 1000,
    )
    return Generated(result) if isinstance(result, bytes) else result


def generate_file(request: FeedRequest) -> Generated:
    """The whole file for `request`, built unconditionally."""
    result = generate(request)
    assert isinstance(result, Generated), "an unconditional build never answers unchanged"
    return result


def source_metadata(generated: Generated) -> dict[str, str]:
    """The validators to store with the file, as the recorder reads them back."""
    validators = generated.validators
    named = {
        storage.SOURCE_ETAG: validators.etag,
        storage.SOURCE_LAST_MODIFIED: validators.last_modified,
    }
    return {name: value for name, value in named.items() if value}


def _failed() -> None:
    # The GenerationFailures alarm watches this, in the feeds and the generator function.
    metrics.add_metric(name="GenerationFailures", unit=MetricUnit.Count, value=1)


def _run_with_timeout(
    fn: Generator, job: GenerationRequest, timeout: float
) -> bytes | Generated | Unchanged:
    """Run a generator in its own thread so a slow one can be abandoned at the deadline."""
    result: Future[bytes | Generated | Unchanged] = Future()

    def target() -> None:
        try:
            result.set_result(fn(job))
        except BaseException as exc:  # handed to the caller through the future
            result.set_exception(exc)

    threading.Thread(target=target, name="offload-generator", daemon=True).start()
    return result.result(timeout=timeout)
