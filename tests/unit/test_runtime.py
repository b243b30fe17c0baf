"""The container's runtime makes each AWS client once, when first used, and shares it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import botocore.session

from offload.config import get_settings
from offload.runtime import build_runtime
from offload.table import ALL_MODELS, CacheEntry


def test_clients_are_made_on_first_use_once_and_shared(aws, monkeypatch):
    made: list[str] = []
    create = botocore.session.Session.create_client

    def counted(self, service_name, *args, **kwargs):
        made.append(service_name)
        return create(self, service_name, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "create_client", counted)
    # WHEN a container starts
    runtime = build_runtime(get_settings())
    # THEN it has made no client yet: a function pays only for the clients it uses
    assert made == []
    # WHEN eight threads ask for the signer (which needs S3) and DynamoDB at once
    with ThreadPoolExecutor(8) as pool:
        signers = list(pool.map(lambda _: runtime.signer, range(8)))
        dynamodbs = list(pool.map(lambda _: runtime.dynamodb, range(8)))
    # THEN each was made once, and every model uses the one DynamoDB client
    assert sorted(made) == ["dynamodb", "s3"]
    assert len({id(signer) for signer in signers}) == 1
    assert len({id(client) for client in dynamodbs}) == 1
    connections = {id(model._get_connection().connection) for model in ALL_MODELS}
    assert len(connections) == 1
    assert CacheEntry._get_connection().connection.client is runtime.dynamodb
    # AND a model's call makes no client of its own
    assert CacheEntry.count() == 0
    assert sorted(made) == ["dynamodb", "s3"]
