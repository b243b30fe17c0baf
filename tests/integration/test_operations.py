"""Operations through the local stack: usage after real requests, a key that rotates and
expires, and a background generation's event delivered by the emulator's event bus."""

from __future__ import annotations

import json
import time
from http import HTTPStatus
from urllib.parse import urljoin

import boto3
import pytest
import requests

from offload import cli
from offload.feeds.events import DETAIL_TYPE, SOURCE
from offload.feeds.outcome import Outcome
from tests.support import cache_status
from tests.support.stack import USED_KEYS, RunningStack

CATALOG = "/feeds/catalog.json"
EXPORT = "/feeds/catalog-export.jsonl"
PATIENCE_SECONDS = 60


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert cli.main(list(args)) == 0
    return capsys.readouterr().out


def printed_key(out: str) -> str:
    key = next(line.split()[-1] for line in out.splitlines() if line.startswith("key:"))
    USED_KEYS.add(key)
    return key


def get(http: requests.Session, stack: RunningStack, path: str, key: str) -> requests.Response:
    return http.get(stack.url(path), headers={"X-Api-Key": key}, allow_redirects=False, timeout=30)


def test_usage_counts_real_requests(stack_aws: RunningStack, make_key, http, capsys):
    # GIVEN a new client that asks for the catalog until it is a hit, then twice more
    key, client_id = make_key()
    answers = [get(http, stack_aws, CATALOG, key)]
    deadline = time.monotonic() + 15
    while cache_status(answers[-1].headers) != Outcome.HIT and time.monotonic() < deadline:
        time.sleep(0.1)
        answers.append(get(http, stack_aws, CATALOG, key))
    answers += [get(http, stack_aws, CATALOG, key) for _ in range(2)]
    assert [a.status_code for a in answers[-3:]] == [HTTPStatus.TEMPORARY_REDIRECT] * 3

    # WHEN usage is reported
    [row] = json.loads(run_cli(capsys, "usage", "--client", client_id, "--format", "json"))

    # THEN every request is counted, and every outcome but the last one (it rides on the
    # client's next request); the first generated the file, the hits handed it out
    assert row["feed"] == "catalog"
    assert row["requests"] == len(answers)
    assert row["misses"] >= 1
    assert row["hits"] >= 2
    assert row["hits"] + row["misses"] + row["not_modified"] == len(answers) - 1
    assert row["bytes"] > 0


def test_a_rotated_key_works_until_its_grace_ends(stack_aws: RunningStack, http, capsys):
    # GIVEN a client's key, rotated with a grace of two seconds
    client_id = f"rotating-{time.time_ns()}"
    old = printed_key(run_cli(capsys, "keys", "create", "--client", client_id))
    new = printed_key(run_cli(capsys, "keys", "rotate", "--client", client_id, "--grace", "2s"))
    # THEN during the grace both keys work
    assert get(http, stack_aws, CATALOG, old).status_code < HTTPStatus.BAD_REQUEST
    assert get(http, stack_aws, CATALOG, new).status_code < HTTPStatus.BAD_REQUEST
    # AND after it the old key is a 403 that says it expired, while the new one works
    time.sleep(2.5)
    expired = get(http, stack_aws, CATALOG, old)
    assert expired.status_code == HTTPStatus.FORBIDDEN
    assert expired.headers["Content-Type"] == "application/problem+json"
    assert "expired at" in expired.json()["detail"]
    assert get(http, stack_aws, CATALOG, new).status_code < HTTPStatus.BAD_REQUEST
    # AND keys list shows both, the old one expired, each with its last use
    listing = [
        line for line in run_cli(capsys, "keys", "list").splitlines() if line.startswith(client_id)
    ]
    assert sorted(line.split()[4] for line in listing) == ["active", "expired"]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert all(line.split()[-2] == today for line in listing)


def test_a_background_generation_is_announced_on_the_bus(
    stack_aws: RunningStack, make_key, http, capsys
):
    # GIVEN a rule on the emulator's default bus that sends Offload's events to a queue
    sqs, events = boto3.client("sqs"), boto3.client("events")
    queue = sqs.create_queue(QueueName=f"generations-{time.time_ns()}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    rule = f"offload-generations-{time.time_ns()}"
    pattern = {"source": [SOURCE], "detail-type": [DETAIL_TYPE]}
    events.put_rule(Name=rule, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": arn}])
    # AND an export that must be generated again (another test may have stored it)
    run_cli(capsys, "invalidate", "--feed", "catalog-export")
    key, client_id = make_key()

    # WHEN the client asks for it and polls until it is stored
    url = stack_aws.url(EXPORT)
    deadline = time.monotonic() + PATIENCE_SECONDS
    answer = http.get(url, headers={"X-Api-Key": key}, allow_redirects=False, timeout=30)
    assert answer.status_code == HTTPStatus.ACCEPTED
    while answer.status_code == HTTPStatus.ACCEPTED and time.monotonic() < deadline:
        time.sleep(0.5)
        url = urljoin(url, answer.headers["Location"])
        answer = http.get(url, headers={"X-Api-Key": key}, allow_redirects=False, timeout=30)
    assert answer.status_code == HTTPStatus.TEMPORARY_REDIRECT

    # THEN the queue holds the event the generator function published, naming this client
    received: list[dict] = []
    while not received and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", [])
        received = [json.loads(m["Body"]) for m in messages]
    mine = [e["detail"] for e in received if e["detail"]["client"] == client_id]
    assert len(mine) == 1
    detail = mine[0]
    assert (detail["feed"], detail["format"], detail["outcome"]) == (
        "catalog-export",
        "jsonl",
        "stored",
    )
    assert detail["size"] > 0 and detail["duration_ms"] >= 0
    assert detail["object_key"].endswith(f"{detail['generation_id']}.jsonl")
    events.remove_targets(Rule=rule, Ids=["queue"])
    events.delete_rule(Name=rule)
