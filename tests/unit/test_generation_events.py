"""A background generation that ends publishes an EventBridge event: read back from SQS."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from http import HTTPStatus

import boto3
import pytest

from offload.feeds.events import DETAIL_TYPE, SOURCE
from offload.table import RebuildLock
from offload_local.template import ROOT, load
from tests.support import BUCKET_NAME, reset_container_state, stored_generations

SLOW = "/feeds/slow.json"



@pytest.fixture
def delivered(aws: None) -> Callable[[], list[dict]]:
    """A rule on the default bus sending Offload's events to a queue; reads them back."""
    sqs, events = boto3.client("sqs"), boto3.client("events")
    queue = sqs.create_queue(QueueName="generation-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="offload-generations",
        EventPattern=json.dumps({"source": [SOURCE], "detail-type": [DETAIL_TYPE]}),
    )
    events.put_targets(Rule="offload-generations", Targets=[{"Id": "queue", "Arn": arn}])

    def read() -> list[dict]:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in messages.get("Messages", [])]

    return read


def test_a_stored_generation_is_announced(call_feed, make_key, slow, launched, run_job, delivered):
    # GIVEN a client whose request started a background generation
    key, client_id = make_key()
    assert call_feed(SLOW, key=key)["statusCode"] == HTTPStatus.ACCEPTED
    # WHEN the generator function stores the file
    assert run_job(launched[0]) == "stored"
    # THEN one event on the default bus says which file, for whom, how big, how long it took
    [event] = delivered()
    assert (event["source"], event["detail-type"]) == (SOURCE, DETAIL_TYPE)
    detail = event["detail"]
    [stored] = stored_generations("slow")
    body = boto3.client("s3").get_object(Bucket=BUCKET_NAME, Key=stored)["Body"].read()
    assert detail == {
        "feed": "slow",
        "format": "json",
        "client": client_id,
        "generation_id": launched[0].generation.id,
        "outcome": "stored",
        "duration_ms": detail["duration_ms"],
        "object_key": stored,
        "size": len(body),
        # RFC 9530's form of the SHA-256 of exactly the stored bytes
        "digest": f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:",
    }
    assert detail["duration_ms"] >= 0


def test_a_failed_generation_is_announced(call_feed, make_key, slow, launched, run_job, delivered):
    key, client_id = make_key()
    slow.fail = RuntimeError("the data source is down")
    call_feed(SLOW, key=key)
    assert run_job(launched[0]) == "failed"
    [event] = delivered()
    detail = event["detail"]
    assert (detail["outcome"], detail["error"], detail["client"]) == (
        "failed",
        "GenerationFailed",
        client_id,
    )
    assert "size" not in detail and "object_key" not in detail


def test_a_repeated_job_announces_nothing(call_feed, make_key, slow, launched, run_job, delivered):
    key, _ = make_key()
    call_feed(SLOW, key=key)
    run_job(launched[0])
    delivered()
    # WHEN Lambda delivers the same job again
    assert run_job(launched[0]) == "superseded"
    # THEN nothing new happened, and nothing is announced
    assert delivered() == []


def test_a_named_bus_receives_the_event(make_key, call_feed, slow, launched, run_job, monkeypatch):
    # GIVEN a container configured with a bus of its own and a rule on it
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name="exports")
    queue = sqs.create_queue(QueueName="exports")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="ready", EventBusName="exports", EventPattern=json.dumps({"source": [SOURCE]})
    )
    events.put_targets(Rule="ready", EventBusName="exports", Targets=[{"Id": "q", "Arn": arn}])
    monkeypatch.setenv("EVENT_BUS_NAME", "exports")
    reset_container_state()  # settings are read once per container
    key, _ = make_key()
    call_feed(SLOW, key=key)
    run_job(launched[0])
    [message] = sqs.receive_message(QueueUrl=queue)["Messages"]
    assert json.loads(message["Body"])["detail"]["outcome"] == "stored"


EXAMPLE_RULE = ROOT / "examples" / "operations" / "export-ready-rule.yaml"


def test_the_documented_rule_matches_a_clients_stored_generation(
    call_feed, make_key, slow, launched, run_job
):
    # GIVEN the docs' example rule, for a client of ours, with a queue as its target
    [rule] = load(EXAMPLE_RULE).values()
    pattern = rule["Properties"]["EventPattern"]
    key, client_id = make_key()
    pattern["detail"]["client"] = [client_id]
    sqs, events = boto3.client("sqs"), boto3.client("events")
    queue = sqs.create_queue(QueueName="export-ready")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name="export-ready", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="export-ready", Targets=[{"Id": "q", "Arn": arn}])
    # WHEN one generation for the client fails and the next is stored
    slow.fail = RuntimeError("the data source is down")
    call_feed(SLOW, key=key)
    run_job(launched[0])
    # THEN only the stored one reached the rule's target
    assert sqs.receive_message(QueueUrl=queue).get("Messages", []) == []
    slow.fail = None
    RebuildLock(RebuildLock.key_for(launched[0].generation.cache_id), RebuildLock.SORT).delete()
    call_feed(SLOW, key=key)
    run_job(launched[-1])
    [message] = sqs.receive_message(QueueUrl=queue)["Messages"]
    assert json.loads(message["Body"])["detail"]["outcome"] == "stored"


def test_the_docs_show_the_example_rule_as_it_is_tested():
    assert EXAMPLE_RULE.read_text() in (ROOT / "docs" / "operations.md").read_text()
