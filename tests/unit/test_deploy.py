"""What a first deploy to AWS would trip over, read from the template as CloudFormation gets it.

moto, cfn-lint and checkov accept all of these; AWS does not (or does, and misbehaves). Each
test reads SAM's transformed template (`offload_local.translate`), resolved for a deployment
with the local stack's resolver, so what is checked is what CloudFormation would create.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from offload_local.template import Stack
from offload_local.translate import translated

PUBLIC_KEY = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0B\n-----END PUBLIC KEY-----"


@functools.cache
def transformed() -> dict[str, Any]:
    return translated()


def deployment(**parameters: str) -> Stack:
    """The transformed template resolved for these parameter values (the rest: defaults)."""
    return Stack(transformed(), parameters=dict(parameters))


def resources(stack: Stack, kind: str) -> dict[str, dict[str, Any]]:
    return stack.resources(kind)


def properties(stack: Stack, logical_id: str) -> dict[str, Any]:
    return stack.resolve(stack.template["Resources"][logical_id].get("Properties", {}))


@pytest.mark.parametrize("kind", ["AWS::DynamoDB::Table", "AWS::S3::Bucket"])
def test_named_stores_are_kept_on_delete_but_not_after_a_failed_create(kind: str):
    # A fixed name plus Retain: a first create that rolls back keeps the table or bucket, and
    # every retry fails with "already exists". RetainExceptOnCreate deletes what the failed
    # create made, and keeps it in every later operation.
    stores = resources(deployment(), kind)
    assert stores
    for logical_id, resource in stores.items():
        assert resource["DeletionPolicy"] == "RetainExceptOnCreate", logical_id
        assert resource["UpdateReplacePolicy"] == "Retain", logical_id
