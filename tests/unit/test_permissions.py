"""Each function's IAM policy in template.yaml covers the AWS calls it really makes.

moto does not enforce IAM, so a missing permission would only show in AWS. These tests run
each function through its flows, record every AWS operation it calls, and compare them with
the actions its template policy allows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.client
import pytest

from offload import storage
from offload.config import ORIGIN_CREDENTIAL_PARAMETER
from offload.feeds import Feed
from offload.feeds.background_build import BackgroundJob, LambdaLauncher
from offload.feeds.cachekey import FeedRequest
from offload.files import Generation
from offload.table import CacheEntry
from offload_local.template import Stack
from offload_local.translate import translated
from tests.support import (
    BUCKET_NAME,
    STACK,
    Api,
    match,
    reset_container_state,
    s3_event,
    stored_generations,
)
from tests.support.feeds import Probe, age_entries, probe_feed
from tests.support.origin import prices_feed

TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
# SAM policy templates the template uses, by the actions they grant.
POLICY_TEMPLATES = {
    "SQSSendMessagePolicy": {"sqs:SendMessage", "sqs:ChangeMessageVisibility"},
    "EventBridgePutEventsPolicy": {"events:PutEvents"},
}


def allowed_actions(logical_id: str) -> set[str]:
    """The actions a function's `Policies` allow (inline statements and policy templates)."""
    allowed: set[str] = set()

    def collect(policy: Any) -> None:
        if isinstance(policy, dict) and "Fn::If" in policy:
            for branch in policy["Fn::If"][1:]:
                collect(branch)
        elif isinstance(policy, dict) and "Statement" in policy:
            for statement in policy["Statement"]:
                actions = statement["Action"]
                allowed.update([actions] if isinstance(actions, str) else actions)
        elif isinstance(policy, dict):
            for name in policy:
                allowed.update(POLICY_TEMPLATES.get(name, set()))

    for policy in STACK.template["Resources"][logical_id]["Properties"]["Policies"]:
        collect(policy)
    return allowed


@pytest.fixture
def slow_probe() -> Iterator[Probe]:
    """A feed `slow` that generates in the background."""
    with probe_feed("slow", generation_timeout_seconds=60.0) as spy:
        yield spy


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Every AWS operation made while the test runs, as IAM action names."""
    made: set[str] = set()
    original = botocore.client.BaseClient._make_api_call

    def record(self: Any, operation_name: str, api_params: dict) -> Any:
        service = self.meta.service_model.signing_name
        if operation_name == "TransactWriteItems":
            # IAM authorises each item of a transaction as its own action.
            for item in api_params["TransactItems"]:
                made.update(f"dynamodb:{TRANSACT_ACTIONS[kind]}" for kind in item)
        else:
            made.add(f"{service}:{operation_name}")
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    yield made


def needed(made: set[str]) -> set[str]:
    """IAM actions for the recorded calls (S3's HEAD is authorised as GetObject)."""
    renamed = {
        "s3:HeadObject": "s3:GetObject",
        "s3:ListObjectsV2": "s3:ListBucket",
        # A multipart upload is authorised as PutObject, part by part.
        "s3:CreateMultipartUpload": "s3:PutObject",
        "s3:UploadPart": "s3:PutObject",
        "s3:CompleteMultipartUpload": "s3:PutObject",
        "lambda:Invoke": "lambda:InvokeFunction",
    }
    return {renamed.get(action, action) for action in made}


def test_feeds_function_policy_covers_its_calls(
    call_feed, make_key, probe, deliver_s3_events, catalog, calls, invalidate
):
    key, _ = make_key()
    invalidate({"scope": "global"})
    made: set[str] = set()

    def served(*args: Any, **kwargs: Any) -> None:
        calls.clear()
        call_feed(*args, **kwargs)
        made.update(calls)

    served("/feeds/catalog.json", key=key)  # miss: catalog query, lock, upload
    served("/feeds/probe.json", key=key)
    deliver_s3_events()
    served("/feeds/probe.json", key=key)  # hit
    age_entries(by=7200)
    probe.fail = RuntimeError("down")
    served("/feeds/probe.json", key=key)  # stale on error, lock released
    served("/feeds/probe.json", query="colour=red", key=key)  # invalid, still counted
    assert needed(made) <= allowed_actions("FeedsFunction")
    assert {"dynamodb:Query", "s3:PutObject", "dynamodb:BatchGetItem"} <= needed(made)


def test_feeds_function_policy_covers_fetching_an_origin_feed(
    call_feed, make_key, origin, calls, monkeypatch
):
    boto3.client("ssm").put_parameter(
        Name="/offload-test/origin-credential", Value="Bearer t", Type="SecureString"
    )
    monkeypatch.setenv(ORIGIN_CREDENTIAL_PARAMETER, "/offload-test/origin-credential")
    reset_container_state()
    key, _ = make_key()
    calls.clear()
    with prices_feed():
        call_feed("/feeds/prices.csv", key=key)  # the credential from SSM, then the upload
    assert {"ssm:GetParameter", "s3:PutObject"} <= needed(calls)
    assert needed(calls) <= allowed_actions("FeedsFunction")


CREDENTIAL_ACTIONS = {"ssm:GetParameter", "ssm:GetParameters", "secretsmanager:GetSecretValue"}
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:offload-prod/origin-AbCdEf"


def credential_grants(parameters: dict[str, str]) -> dict[str, list[tuple[str, Any]]]:
    """Per IAM role of the transformed template deployed with `parameters`, each statement
    that lets it read an SSM parameter or a secret: (action, resource)."""
    template = translated()
    stack = Stack(template, parameters=parameters)
    grants: dict[str, list[tuple[str, Any]]] = {}
    for logical_id in stack.resources("AWS::IAM::Role"):
        for policy in stack.resolve(template["Resources"][logical_id]["Properties"]).get(
            "Policies", []
        ):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"]
                for action in [actions] if isinstance(actions, str) else actions:
                    if action in CREDENTIAL_ACTIONS:
                        grants.setdefault(logical_id, []).append((action, statement["Resource"]))
    return grants


@pytest.mark.parametrize(
    ("parameters", "grant"),
    [
        (
            {"OriginCredentialParameter": "/offload-prod/origin-credential"},
            (
                "ssm:GetParameter",
                "arn:aws:ssm:us-east-1:123456789012:parameter/offload-prod/origin-credential",
            ),
        ),
        ({"OriginCredentialSecret": SECRET_ARN}, ("secretsmanager:GetSecretValue", SECRET_ARN)),
    ],
    ids=["ssm", "secrets-manager"],
)
def test_only_the_fetching_functions_may_read_the_origin_credential_and_only_it(
    parameters: dict[str, str], grant: tuple[str, str]
):
    # WHEN the stack is deployed with the credential named
    grants = credential_grants({"OriginBaseUrl": "https://api.example.com", **parameters})
    # THEN exactly the feeds and generator functions may read exactly that one credential
    assert grants == {"FeedsFunctionRole": [grant], "FeedGeneratorFunctionRole": [grant]}


def test_without_an_origin_credential_no_function_may_read_one():
    assert credential_grants({"OriginBaseUrl": "https://api.example.com"}) == {}


def test_feeds_function_policy_covers_cloudfront_signing(
    cloudfront, call_feed, make_key, probe, deliver_s3_events, calls
):
    key, _ = make_key()
    call_feed("/feeds/probe.json", key=key)
    deliver_s3_events()
    calls.clear()
    call_feed("/feeds/probe.json", key=key)  # hit: the first signature reads SSM
    assert needed(calls) <= allowed_actions("FeedsFunction")
    assert "ssm:GetParameters" in needed(calls)


def test_feeds_and_generator_policies_cover_a_background_generation(
    call_feed, make_key, catalog, calls, handler, monkeypatch
):
    key, _ = make_key()
    # The feeds function starts the generator (moto has no such function: a 503 here).
    call_feed("/feeds/catalog-export.jsonl", key=key)
    assert "lambda:InvokeFunction" in needed(calls)
    assert needed(calls) <= allowed_actions("FeedsFunction")
    jobs: list[BackgroundJob] = []
    monkeypatch.setattr(LambdaLauncher, "__call__", lambda self, job: jobs.append(job))
    call_feed("/feeds/catalog-export.jsonl", key=key)
    calls.clear()
    generator = handler("FeedGeneratorFunction")
    assert generator(jobs[0].event())["finished"] == "stored"  # renew, catalog query, upload
    assert generator(jobs[0].event())["finished"] == "superseded"  # HEAD: stored already
    assert needed(calls) <= allowed_actions("FeedGeneratorFunction")
    assert {"dynamodb:UpdateItem", "dynamodb:Query", "s3:PutObject"} <= needed(calls)


def test_a_failing_background_generation_marks_its_lock_as_its_policy_allows(
    call_feed, make_key, slow_probe, calls, handler, monkeypatch
):
    key, _ = make_key()
    jobs: list[BackgroundJob] = []
    monkeypatch.setattr(LambdaLauncher, "__call__", lambda self, job: jobs.append(job))
    call_feed("/feeds/slow.json", key=key)
    slow_probe.fail = RuntimeError("down")
    calls.clear()
    assert handler("FeedGeneratorFunction")(jobs[0].event())["finished"] == "failed"
    assert needed(calls) <= allowed_actions("FeedGeneratorFunction")


def test_recorder_function_policy_covers_its_calls(handler, call_feed, make_key, probe, calls):
    key, _ = make_key()
    call_feed("/feeds/probe.json", key=key)
    [stored] = stored_generations()
    calls.clear()
    recorder = handler("RecorderFunction")
    recorder(s3_event("ObjectCreated:Put", stored))
    recorder(s3_event("ObjectRemoved:Delete", stored))
    made = needed(calls)
    assert made <= allowed_actions("RecorderFunction")
    assert {"dynamodb:PutItem", "dynamodb:DeleteItem", "s3:GetObject"} <= made
    assert not list(CacheEntry.scan(CacheEntry.sk == CacheEntry.SORT))


def test_invalidations_function_policy_covers_its_calls(invalidate, calls, api: Api):
    api.record(match("m-1", "42", "17"))
    calls.clear()
    invalidate({"feed": "catalog", "soft": True})
    invalidate({"collection": "users/42/matches"})
    invalidate({"collection": "users/7/matches"})
    assert needed(calls) <= allowed_actions("InvalidationsFunction")


def test_collections_function_policy_covers_its_calls(api: Api, calls):
    calls.clear()
    api.record(match("m-1", "42", "17"))
    api.record(match("m-1", "42", "17"))
    version = json.loads(api.version("42")["body"])["version"]
    api.index("42")
    api.index("42", version)
    api.match("m-1")
    api.version("99")
    assert needed(calls) <= allowed_actions("CollectionsFunction")


def test_a_file_too_large_for_a_response_goes_up_in_parts_the_policy_allows(aws, calls):
    # GIVEN a generation larger than a Lambda response (6 MB), of incompressible bytes
    request = FeedRequest(
        feed=Feed(name="big", formats={"bin": "application/octet-stream"}, generate=bytes),
        format="bin",
        client_id="client-1",
        params=(),
    )
    generation = Generation.start(request, 1_800_000_000.0)
    data = os.urandom(13 * 1024 * 1024)
    # WHEN it is stored
    storage.upload(
        boto3.client("s3"), BUCKET_NAME, generation, data, content_type="application/octet-stream"
    )
    # THEN in parts, with calls the feeds function may make, and the file is whole
    assert "s3:UploadPart" in calls
    assert needed(calls) <= allowed_actions("FeedsFunction")
    stored = boto3.client("s3").get_object(Bucket=BUCKET_NAME, Key=generation.object_key)
    assert stored["Body"].read() == data
    assert stored["ContentDisposition"] == 'attachment; filename="big-2027-01-15.bin"'
