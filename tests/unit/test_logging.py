"""Log lines carry their own invocation's fields: context, correlation id, appended keys."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import pytest
from botocore.exceptions import ClientError

from offload import auth
from offload.feeds.background_build import BackgroundJob, LambdaLauncher
from offload.observability import logger
from tests.support import feed_event, s3_event
from tests.support.feeds import probe_feed


@pytest.fixture
def logged() -> Iterator[Callable[[], list[dict]]]:
    """`logged()`: the structured lines logged so far in the test, as Lambda ships them."""
    stream = io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.setFormatter(logger.registered_formatter)
    logger.addHandler(capture)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(capture)


def throttled(*args: object) -> None:
    raise ClientError({"Error": {"Code": "ThrottlingException"}}, "GetItem")


def test_a_request_failing_before_it_is_authenticated_logs_no_earlier_client(
    containers, make_key, probe, monkeypatch, logged
):
    # GIVEN a container that served an authenticated client
    pool = containers("FeedsFunction")
    key, _ = make_key()
    assert pool.invoke(feed_event("/feeds/probe.json", key=key))["statusCode"] == HTTPStatus.OK
    # WHEN its next request fails while its key is looked up
    # (a container's first look at a key is the read that also records its last use)
    monkeypatch.setattr(auth, "_load_and_mark", throttled)
    other, _ = make_key()
    answer = pool.invoke(feed_event("/feeds/probe.json", key=other))
    assert answer["statusCode"] == HTTPStatus.SERVICE_UNAVAILABLE
    # THEN its failure is logged without the earlier request's client
    [failure] = [line for line in logged() if line["message"] == "dependency failed"]
    assert "client_id" not in failure
    assert failure["function_name"] == "FeedsFunction"


def test_concurrent_invocations_log_their_own_fields(
    containers, make_key, monkeypatch, logged
):
    # GIVEN a background job, and an S3 event recorded in another container while it runs
    jobs: list[BackgroundJob] = []
    monkeypatch.setattr(LambdaLauncher, "__call__", lambda self, job: jobs.append(job))
    key, _ = make_key()
    recorder = containers("RecorderFunction")
    with probe_feed("slow", generation_timeout_seconds=60.0) as slow:
        assert containers("FeedsFunction").invoke(feed_event("/feeds/slow.json", key=key))[
            "statusCode"
        ] == HTTPStatus.ACCEPTED

        def record_meanwhile() -> None:
            event = s3_event("ObjectCreated:Put", "files/unrelated.json")
            with ThreadPoolExecutor(max_workers=1) as executor:
                executor.submit(recorder.invoke, event).result(timeout=10)

        slow.during = record_meanwhile
        # WHEN the generator function runs the job
        containers("FeedGeneratorFunction").invoke(jobs[0].event())
    lines = logged()
    # THEN the generator's lines are its own, and the recorder's carry none of the job's
    [ended] = [line for line in lines if line["message"] == "background generation ended"]
    assert ended["function_name"] == "FeedGeneratorFunction"
    assert ended["feed"] == "slow"
    [ignored] = [line for line in lines if line["message"] == "not a generated object; ignored"]
    assert ignored["function_name"] == "RecorderFunction"
    assert "feed" not in ignored and "object_key" not in ignored and "client_id" not in ignored
