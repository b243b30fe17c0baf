"""A cancelled DynamoDB transaction leaves every item as it was (the emulator's rollback)."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support import TABLE_NAME


def item(pk: str, sk: str, **attributes: str) -> dict:
    return {"pk": {"S": pk}, "sk": {"S": sk}, **{k: {"S": v} for k, v in attributes.items()}}


def test_a_cancelled_transaction_changes_nothing_and_others_writes_stay(aws):
    dynamodb = boto3.client("dynamodb")
    # GIVEN an item that will be updated, one that will be deleted, and an unrelated one
    dynamodb.put_item(TableName=TABLE_NAME, Item=item("a", "1", state="old"))
    dynamodb.put_item(TableName=TABLE_NAME, Item=item("b", "1", state="kept"))
    dynamodb.put_item(TableName=TABLE_NAME, Item=item("c", "1", state="other"))
    # WHEN a transaction that updates, deletes and creates fails on its last condition
    with pytest.raises(ClientError) as failed:
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": TABLE_NAME,
                        "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}},
                        "UpdateExpression": "SET #s = :new",
                        "ExpressionAttributeNames": {"#s": "state"},
                        "ExpressionAttributeValues": {":new": {"S": "new"}},
                    }
                },
                {"Delete": {"TableName": TABLE_NAME, "Key": {"pk": {"S": "b"}, "sk": {"S": "1"}}}},
                {"Put": {"TableName": TABLE_NAME, "Item": item("d", "1", state="created")}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE_NAME,
                        "Key": {"pk": {"S": "c"}, "sk": {"S": "1"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    # THEN it was cancelled and every item is as before
    assert failed.value.response["Error"]["Code"] == "TransactionCanceledException"
    items = dynamodb.scan(TableName=TABLE_NAME)["Items"]
    assert sorted((i["pk"]["S"], i["state"]["S"]) for i in items) == [
        ("a", "old"),
        ("b", "kept"),
        ("c", "other"),
    ]
