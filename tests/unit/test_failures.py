"""Dependency failures, large files and logs: what a user sees when AWS misbehaves."""

from __future__ import annotations

import io
import json
import logging
from http import HTTPStatus

import boto3

from offload.config import get_settings
from offload.feeds.outcome import Outcome
from offload.observability import logger
from offload.runtime import get_runtime
from tests.support import BUCKET_NAME, TABLE_NAME, cache_status, problem_of
from tests.support.feeds import download


def test_dynamodb_failure_is_a_503_problem_with_retry_after(call_feed, make_key, probe):
    key, _ = make_key()
    call_feed("/feeds/probe.json", key=key)  # warms the key cache: the failure hits later calls
    boto3.client("dynamodb").delete_table(TableName=TABLE_NAME)
    response = call_feed("/feeds/probe.json", key=key)
    assert response["statusCode"] == HTTPStatus.SERVICE_UNAVAILABLE
    assert response["headers"]["Retry-After"] == str(get_settings().retry_after_seconds)
    assert "Traceback" not in problem_of(response)["detail"]


def test_dependency_failure_after_counting_keeps_the_ratelimit_headers(call_feed, make_key, probe):
    key, _ = make_key()
    boto3.client("s3").delete_bucket(Bucket=BUCKET_NAME)
    response = call_feed("/feeds/probe.json", key=key)
    assert response["statusCode"] == HTTPStatus.SERVICE_UNAVAILABLE
    assert response["headers"]["RateLimit-Remaining"] == "999"


def test_upload_failure_without_a_stale_file_is_a_503(call_feed, make_key, probe):
    key, _ = make_key()
    s3 = boto3.client("s3")
    s3.delete_bucket(Bucket=BUCKET_NAME)
    response = call_feed("/feeds/probe.json", key=key)
    assert response["statusCode"] == HTTPStatus.SERVICE_UNAVAILABLE
    problem_of(response)


def test_file_over_the_inline_limit_is_redirected_to(
    monkeypatch, handler, call_feed, make_key, probe
):
    # GIVEN an inline limit smaller than the generated file
    monkeypatch.setenv("INLINE_LIMIT_BYTES", "10")
    get_settings.cache_clear()
    get_runtime.cache_clear()
    key, _ = make_key()
    # WHEN it is generated
    response = call_feed("/feeds/probe.json", key=key)
    # THEN the client is redirected to the new object instead of getting it inline
    assert response["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    assert cache_status(response["headers"]) == Outcome.STORED
    assert download(response["headers"]["Location"]).startswith(b'{"feed": "probe"')


def test_logs_never_contain_the_api_key(call_feed, make_key, probe):
    # GIVEN the structured log stream captured as Lambda would ship it
    stream = io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.setFormatter(logger.registered_formatter)
    logger.addHandler(capture)
    try:
        # WHEN requests carrying the key in the query and in a header fail and are logged
        key, _ = make_key()
        probe.fail = RuntimeError("boom")
        call_feed("/feeds/probe.json", query=f"key={key}")
        call_feed("/feeds/probe.json", headers={"authorization": f"Bearer {key}"})
    finally:
        logger.removeHandler(capture)
    # THEN the failure is logged, with the request's correlation id, but never the key
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert any(record["level"] == "ERROR" for record in records)
    assert all(record.get("correlation_id") for record in records)
    assert key not in stream.getvalue()
