"""API keys: where they are accepted, what is stored, and who is turned away."""

from __future__ import annotations

from http import HTTPStatus

import boto3
import pytest

from offload import api_keys, auth
from tests.support import TABLE_NAME, problem_of


def test_missing_key_is_401(call_feed, catalog):
    response = call_feed()
    assert response["statusCode"] == HTTPStatus.UNAUTHORIZED
    problem_of(response)


@pytest.mark.parametrize(
    "how",
    [
        {"headers": {"x-api-key": "{key}"}},
        {"headers": {"authorization": "Bearer {key}"}},
        {"query": "key={key}"},
    ],
    ids=["header", "bearer", "query"],
)
def test_key_is_accepted_from_header_bearer_and_query(call_feed, make_key, probe, how):
    key, _ = make_key()
    kwargs = {
        name: (
            {h: v.format(key=key) for h, v in value.items()}
            if isinstance(value, dict)
            else value.format(key=key)
        )
        for name, value in how.items()
    }
    response = call_feed("/feeds/probe.json", **kwargs)
    assert response["statusCode"] == HTTPStatus.OK


def test_wrong_key_is_403(call_feed, make_key, probe):
    make_key()
    response = call_feed("/feeds/probe.json", key="ofl_not-a-key")
    assert response["statusCode"] == HTTPStatus.FORBIDDEN
    problem_of(response)


def test_revoked_key_is_403(call_feed, make_key, probe):
    key, client_id = make_key()
    assert api_keys.revoke(client_id=client_id) == 1
    assert call_feed("/feeds/probe.json", key=key)["statusCode"] == HTTPStatus.FORBIDDEN


def test_out_of_scope_key_is_403(call_feed, make_key, probe):
    admin_key, _ = make_key(scopes={auth.SCOPE_ADMIN})
    assert call_feed("/feeds/probe.json", key=admin_key)["statusCode"] == HTTPStatus.FORBIDDEN


def test_feeds_key_cannot_invalidate(handler, make_key, load_event):
    feeds_key, _ = make_key()
    event = load_event("invalidation")
    event["headers"]["x-api-key"] = feeds_key
    response = handler("InvalidationsFunction")(event)
    assert response["statusCode"] == HTTPStatus.FORBIDDEN
    problem_of(response)


def test_only_the_hash_of_a_key_is_stored(make_key):
    key, _ = make_key()
    items = boto3.client("dynamodb").scan(TableName=TABLE_NAME)["Items"]
    stored = repr(items)
    assert key not in stored
    assert auth.hash_key(key) in stored


def test_revocation_applies_within_the_client_cache_time(aws, make_key):
    key, client_id = make_key()
    cache = auth.ClientCache(ttl=0)
    assert auth.authenticate(key, auth.SCOPE_FEEDS, cache).client_id == client_id
    api_keys.revoke(key=key)
    with pytest.raises(auth.Forbidden):
        auth.authenticate(key, auth.SCOPE_FEEDS, cache)


def test_keys_are_random_and_prefixed():
    first, second = api_keys.new_key(), api_keys.new_key()
    assert first != second
    assert first.startswith(auth.KEY_PREFIX) and len(first) > 40
