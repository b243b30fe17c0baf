"""Configured values are used as configured: each run with a value other than its default,
and what depends on it asserted exactly, so a hard-coded default would fail here."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.stub import Stubber

from offload import api_keys, auth, ratelimit
from offload.config import (
    CLIENT_CACHE_SECONDS,
    RATE_LIMIT_WINDOW_SECONDS,
    SIGNED_URL_TTL_SECONDS,
    get_settings,
)
from offload.feeds import REGISTRY
from offload.feeds.background_build import BackgroundJob, Finished, LambdaLauncher, run
from offload.feeds.cachekey import FeedRequest
from offload.files import Generation
from offload.locks import current
from offload.table import RateCounter
from tests.support import STACK, reset_container_state
from tests.support.clock import FakeClock
from tests.support.feeds import probe_feed

PROBE = "/feeds/probe.json"


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch, aws: None):
    """`configured(NAME="value", ...)`: containers started from here on read these settings."""

    def configure(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        reset_container_state()

    return configure


def test_a_link_expires_when_its_signed_url_does(
    configured, call_feed, make_key, probe, deliver_s3_events
):
    # GIVEN signed URLs that last 123 s
    configured(**{SIGNED_URL_TTL_SECONDS: "123"})
    key, _ = make_key()
    call_feed(PROBE, key=key)
    deliver_s3_events()
    # WHEN a client asks for a link
    before = time.time()
    response = call_feed(PROBE, key=key, query="redirect=false")
    after = time.time()
    link = json.loads(response["body"])
    # THEN the link says when the URL stops working: 123 s from the request, in seconds
    expires_at = datetime.fromisoformat(link["expires_at"]).timestamp()
    assert math.floor(before + 123) <= expires_at <= after + 123
    assert parse_qs(urlsplit(link["url"]).query)["X-Amz-Expires"] == ["123"]


def test_a_revoked_key_is_refused_once_the_configured_cache_time_is_over(
    configured, call_feed, make_key, probe
):
    # GIVEN containers that keep no client record (a cache time of 0)
    configured(**{CLIENT_CACHE_SECONDS: "0"})
    key, _ = make_key()
    assert call_feed(PROBE, key=key)["statusCode"] == HTTPStatus.OK
    # WHEN the key is revoked
    assert api_keys.revoke(key=key) == 1
    # THEN the very next request is refused
    assert call_feed(PROBE, key=key)["statusCode"] == HTTPStatus.FORBIDDEN


def test_the_configured_window_scales_the_limit_and_resets_on_time(
    configured, call_feed, make_key, probe
):
    # GIVEN two-hour windows, and a client allowed one request an hour: two a window
    window = 7200
    configured(**{RATE_LIMIT_WINDOW_SECONDS: str(window)})
    key, client_id = make_key(hourly_limit=1)
    before = time.time()
    answers = [call_feed(PROBE, key=key) for _ in range(3)]
    after = time.time()
    # THEN the third is refused, and every answer counts in the two-hour window
    assert [a["statusCode"] < HTTPStatus.BAD_REQUEST for a in answers] == [True, True, False]
    assert answers[2]["statusCode"] == HTTPStatus.TOO_MANY_REQUESTS
    assert {a["headers"]["RateLimit-Limit"] for a in answers} == {"2"}
    left = {max(1, math.ceil((t // window + 1) * window - t)) for t in (before, after)}
    assert int(answers[2]["headers"]["RateLimit-Reset"]) in left
    assert answers[2]["headers"]["Retry-After"] == answers[2]["headers"]["RateLimit-Reset"]
    # AND the window's counter lives one window past its own, or as long as the usage it
    # counts is kept, whichever is longer
    start = int(after // window * window)
    counter = RateCounter.get(RateCounter.key_for(client_id, start), RateCounter.SORT)
    retention = get_settings().usage_retention_days * 86_400
    assert counter.expires_at.timestamp() == start + max(2 * window, retention)


def test_a_counter_expires_one_window_after_its_own_ends(aws, make_key):
    _, client_id = make_key(hourly_limit=10)
    client = auth.Client(client_id=client_id, scopes=frozenset({"feeds"}), hourly_limit=10)
    now, window = 1_800_000_123.0, 900
    ratelimit.consume(client, window_seconds=window, now=now)
    start = int(now // window * window)
    counter = RateCounter.get(RateCounter.key_for(client_id, start), RateCounter.SORT)
    assert counter.expires_at.timestamp() == start + 2 * window


# --- background generations: asynchronous, and never run again after failing ----------------


def test_a_background_generation_is_started_as_an_asynchronous_invoke(aws):
    # GIVEN the launcher and Lambda's API, stubbed to expect exactly one Event invocation
    settings = get_settings()
    launcher = LambdaLauncher(settings)
    client = boto3.client("lambda")
    launcher._client = client
    with probe_feed("slow", generation_timeout_seconds=60.0):
        request = FeedRequest(REGISTRY.get("slow"), "json", "acme", ())
        job = BackgroundJob(request, Generation.start(request, time.time()))
        with Stubber(client) as stub:
            stub.add_response(
                "invoke",
                {"StatusCode": 202},
                {
                    "FunctionName": settings.generator_function_name,
                    "InvocationType": "Event",
                    "Payload": json.dumps(job.event()).encode(),
                },
            )
            # WHEN it launches a job
            launcher(job)
            # THEN it made that call and no other: Lambda queues it, nobody waits for it
            stub.assert_no_pending_responses()
    assert settings.generator_function_name == STACK.resource_name("FeedGeneratorFunction")


def test_a_job_delivered_again_after_failing_does_not_run_again(
    call_feed, make_key, runtime, monkeypatch
):
    jobs: list[BackgroundJob] = []
    monkeypatch.setattr(LambdaLauncher, "__call__", lambda self, job: jobs.append(job))
    key, _ = make_key()
    with probe_feed("slow", generation_timeout_seconds=60.0) as slow:
        call_feed("/feeds/slow.json", key=key)
        slow.fail = RuntimeError("the data source refused")
        # GIVEN a background generation that failed, its lock marked so
        assert run(jobs[0], runtime, sleep=FakeClock().sleep) is Finished.FAILED
        assert current(jobs[0].generation.cache_id).failure == "GenerationFailed"
        # WHEN Lambda delivers the same event again
        slow.fail = None
        finished = run(jobs[0], runtime, sleep=FakeClock().sleep)
        # THEN it runs nothing: the failure stands until its lease ends
        assert finished is Finished.SUPERSEDED
        assert slow.calls == 1


def test_a_dependency_failure_says_to_retry_after_the_configured_time(
    configured, call_feed, make_key, probe
):
    configured(RETRY_AFTER_SECONDS="7")
    key, _ = make_key()
    boto3.client("s3").delete_bucket(Bucket=get_settings().bucket_name)
    answer = call_feed(PROBE, key=key)
    assert answer["statusCode"] == HTTPStatus.SERVICE_UNAVAILABLE
    assert answer["headers"]["Retry-After"] == "7"
