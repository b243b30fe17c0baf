"""The template's tables, buckets and queues, made in an emulator as the template defines them.

One helper for the local stack's emulator, the unit tests (moto in-process) and the benches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3

from offload_local.template import Stack

ClientFactory = Callable[[str], Any]


def _default_client(service: str) -> Any:
    return boto3.client(service)  # type: ignore[call-overload]


def create_resources(
    stack: Stack, client: ClientFactory | None = None, *, names: dict[str, str] | None = None
) -> None:
    """Create every `AWS::DynamoDB::Table` (with its TTL), `AWS::S3::Bucket` and
    `AWS::SQS::Queue` of the template, with `client` (boto3's default session if none);
    `names` renames resources by logical id."""
    client = client or _default_client
    names = names or {}
    dynamodb = client("dynamodb")
    for logical_id in stack.resources("AWS::DynamoDB::Table"):
        definition = stack.table_definition(logical_id)
        definition["TableName"] = names.get(logical_id, definition["TableName"])
        dynamodb.create_table(**definition)
        if ttl := stack.ttl_attribute(logical_id):
            dynamodb.update_time_to_live(
                TableName=definition["TableName"],
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl},
            )
    s3 = client("s3")
    region = s3.meta.region_name
    location: dict[str, Any] = (
        {}
        if region == "us-east-1"
        else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    )
    for logical_id in stack.resources("AWS::S3::Bucket"):
        bucket = names.get(logical_id, stack.resource_name(logical_id))
        s3.create_bucket(Bucket=bucket, **location)
    sqs = client("sqs")
    for logical_id in stack.resources("AWS::SQS::Queue"):
        sqs.create_queue(QueueName=names.get(logical_id, stack.resource_name(logical_id)))
