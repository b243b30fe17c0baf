"""S3 events from the emulator: which requests make which records, and how they are delivered.

An emulator of its own runs here, in-process on a free port, so the changes it reports can be
inspected directly; the stack's own flow (upload → recorder → HIT) is in test_feeds_http.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest

from offload_local.emulator import Emulator
from offload_local.invocations import AsyncInvoker
from offload_local.lambdas import Containers
from offload_local.s3events import Notifications, ObjectChange, event_record
from offload_local.template import Function
from tests.support import BUCKET_NAME, STACK

RECORDER = next(function for function in STACK.functions() if function.notifications)


@dataclass
class Emulated:
    s3: Any
    sqs: Any
    changes: list[ObjectChange]


@pytest.fixture(scope="module")
def emulated() -> Iterator[Emulated]:
    """An emulator with the template's resources, its object changes collected in a list."""
    changes: list[ObjectChange] = []
    emulator = Emulator(STACK, port=0, on_change=changes.append)
    emulator.start()
    session = boto3.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name=STACK.region
    )
    emulator.create_resources(session)
    yield Emulated(
        session.client("s3", endpoint_url=emulator.endpoint_url),
        session.client("sqs", endpoint_url=emulator.endpoint_url),
        changes,
    )
    emulator.stop()


@pytest.fixture
def s3(emulated: Emulated) -> Any:
    emulated.changes.clear()
    return emulated.s3


def test_put_reports_the_created_object(s3, emulated):
    # GIVEN a key that needs encoding in a URL and in an event
    key, body = "files/a b+c=d/é.json", b'{"x": 1}'

    # WHEN it is uploaded
    s3.put_object(Bucket=BUCKET_NAME, Key=key, Body=body)

    # THEN one creation is reported, with the object's size and eTag
    (change,) = emulated.changes
    assert change.event_name == "ObjectCreated:Put"
    assert (change.bucket, change.key) == (BUCKET_NAME, key)
    assert change.size == len(body)
    assert change.etag == hashlib.md5(body).hexdigest()


def test_copy_multipart_and_deletes_are_reported(s3, emulated):
    s3.put_object(Bucket=BUCKET_NAME, Key="files/one", Body=b"1")
    s3.copy_object(
        Bucket=BUCKET_NAME, Key="files/two", CopySource={"Bucket": BUCKET_NAME, "Key": "files/one"}
    )
    upload = s3.create_multipart_upload(Bucket=BUCKET_NAME, Key="files/three")
    part = s3.upload_part(
        Bucket=BUCKET_NAME, Key="files/three", UploadId=upload["UploadId"], PartNumber=1, Body=b"3"
    )
    s3.complete_multipart_upload(
        Bucket=BUCKET_NAME,
        Key="files/three",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    s3.delete_object(Bucket=BUCKET_NAME, Key="files/one")
    s3.delete_objects(
        Bucket=BUCKET_NAME, Delete={"Objects": [{"Key": "files/two"}, {"Key": "files/three"}]}
    )

    assert [(change.event_name, change.key) for change in emulated.changes] == [
        ("ObjectCreated:Put", "files/one"),
        ("ObjectCreated:Copy", "files/two"),
        ("ObjectCreated:CompleteMultipartUpload", "files/three"),
        ("ObjectRemoved:Delete", "files/one"),
        ("ObjectRemoved:Delete", "files/two"),
        ("ObjectRemoved:Delete", "files/three"),
    ]
    assert emulated.changes[2].size == 1


def test_reads_and_failed_or_non_object_writes_report_nothing(s3, emulated):
    s3.put_object(Bucket=BUCKET_NAME, Key="files/tagged", Body=b"x")
    emulated.changes.clear()
    s3.get_object(Bucket=BUCKET_NAME, Key="files/tagged")["Body"].read()
    s3.head_object(Bucket=BUCKET_NAME, Key="files/tagged")
    s3.put_object_tagging(
        Bucket=BUCKET_NAME, Key="files/tagged", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
    )
    s3.list_objects_v2(Bucket=BUCKET_NAME)
    with pytest.raises(s3.exceptions.NoSuchBucket):
        s3.put_object(Bucket="no-such-bucket", Key="files/x", Body=b"x")
    assert emulated.changes == []


def test_record_is_an_s3_event_record():
    change = ObjectChange(
        "ObjectCreated:Put", BUCKET_NAME, "files/a b+c.json", size=5, etag="abc", request_id="R1"
    )
    record = event_record(change, region="eu-west-1", configuration_id="Uploaded", sequencer="0A")
    assert record["eventSource"] == "aws:s3"
    assert record["eventVersion"] == "2.1"
    assert record["awsRegion"] == "eu-west-1"
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["eventTime"].endswith("Z")
    assert record["responseElements"]["x-amz-request-id"] == "R1"
    assert record["s3"]["configurationId"] == "Uploaded"
    assert record["s3"]["bucket"] == {
        "name": BUCKET_NAME,
        "ownerIdentity": {"principalId": "LOCAL"},
        "arn": f"arn:aws:s3:::{BUCKET_NAME}",
    }
    assert record["s3"]["object"] == {
        "key": "files/a+b%2Bc.json",
        "size": 5,
        "eTag": "abc",
        "sequencer": "0A",
    }
    assert unquote_plus(record["s3"]["object"]["key"]) == change.key


class Recording(Containers):
    """A function that records its events and fails the first `failures` invocations."""

    def __init__(self, function: Function, failures: int = 0) -> None:
        super().__init__(function)
        self.events: list[dict] = []
        self.failures = failures

    def invoke(self, event: dict) -> Any:
        self.events.append(event)
        if len(self.events) <= self.failures:
            raise RuntimeError("cannot record")
        return {"recorded": ["advanced"]}


def notifications_for(
    recording: Recording, emulated: Emulated
) -> tuple[Notifications, AsyncInvoker]:
    invoker = AsyncInvoker(retry_delays=(0.01, 0.01), sqs=lambda: emulated.sqs)
    notifications = Notifications(
        [RECORDER], {RECORDER.logical_id: recording}, region=STACK.region, invoker=invoker
    )
    return notifications, invoker


def test_events_reach_the_template_s_event_sources_in_order(emulated):
    recording = Recording(RECORDER)
    notifications, invoker = notifications_for(recording, emulated)
    try:
        for key in ("files/a.json", "other/b.json", "files/c.json"):
            notifications.publish(ObjectChange("ObjectCreated:Put", BUCKET_NAME, key, size=1))
        notifications.publish(ObjectChange("ObjectRemoved:Delete", BUCKET_NAME, "files/a.json"))
        notifications.publish(ObjectChange("ObjectCreated:Put", "other-bucket", "files/d.json"))
        assert invoker.wait_idle(10)
    finally:
        invoker.close()

    records = sorted(
        (event["Records"][0] for event in recording.events),
        key=lambda record: record["s3"]["object"]["sequencer"],
    )
    # Only the template's prefix (files/) and bucket, one object per event, as S3 sends them.
    assert [(r["eventName"], r["s3"]["object"]["key"]) for r in records] == [
        ("ObjectCreated:Put", "files/a.json"),
        ("ObjectCreated:Put", "files/c.json"),
        ("ObjectRemoved:Delete", "files/a.json"),
    ]
    assert [r["s3"]["configurationId"] for r in records] == [
        "ObjectCreated",
        "ObjectCreated",
        "ObjectRemoved",
    ]
    assert "size" not in records[2]["s3"]["object"]


def test_failed_event_is_retried_then_sent_to_the_dead_letter_queue(emulated):
    # GIVEN a recorder that fails every time
    recording = Recording(RECORDER, failures=99)
    notifications, invoker = notifications_for(recording, emulated)
    queue_name = RECORDER.on_failure.rsplit(":", 1)[1]
    queue_url = emulated.sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]

    # WHEN an event for it arrives
    try:
        notifications.publish(ObjectChange("ObjectCreated:Put", BUCKET_NAME, "files/x.json"))
        assert invoker.wait_idle(10)
    finally:
        invoker.close()

    # THEN it was tried 1 + MaximumRetryAttempts times, then dead-lettered as Lambda does
    assert len(recording.events) == 1 + RECORDER.max_retry_attempts
    (message,) = emulated.sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0)["Messages"]
    failure = json.loads(message["Body"])
    assert failure["requestContext"]["condition"] == "RetriesExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["requestContext"]["functionArn"].startswith(RECORDER.arn)
    assert failure["requestPayload"] == recording.events[0]
    assert failure["responsePayload"]["errorType"] == "RuntimeError"
