"""POST /invalidations: validation, authorisation and the answer."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest

from offload.freshness import read_coverage
from tests.support import problem_of


@pytest.mark.parametrize(
    ("body", "described"),
    [
        ({"scope": "global"}, {"scope": "global", "soft": False}),
        ({"feed": "catalog"}, {"feed": "catalog", "soft": False}),
        ({"client": "acme", "soft": True}, {"client": "acme", "soft": True}),
    ],
)
def test_invalidation_is_accepted_and_described(invalidate, body, described):
    response = invalidate(body)
    assert response["statusCode"] == HTTPStatus.ACCEPTED
    answer = json.loads(response["body"])
    assert answer["invalidated"] == described
    assert answer["at"].endswith("+00:00")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"scope": "everything"},
        {"feed": "catalog", "client": "acme"},
        {"feed": "../etc"},
        {"feed": 7},
        {"feed": "catalog", "soft": "yes"},
        {"feed": "catalog", "colour": "red"},
        [1, 2],
    ],
    ids=str,
)
def test_malformed_body_is_400(invalidate, body):
    response = invalidate(body)
    assert response["statusCode"] == HTTPStatus.BAD_REQUEST
    problem_of(response)


def test_an_unknown_feed_is_404_and_invalidates_nothing(invalidate, runtime):
    response = invalidate({"feed": "nosuch"})
    assert response["statusCode"] == HTTPStatus.NOT_FOUND
    assert "nosuch" in problem_of(response)["detail"]
    assert read_coverage("nosuch", "anyone").hard_at == 0


def test_body_that_is_not_json_is_400(handler, make_key, load_event):
    from offload import auth

    admin_key, _ = make_key(scopes={auth.SCOPE_ADMIN})
    event = load_event("invalidation")
    event["headers"]["x-api-key"] = admin_key
    event["body"] = "{not json"
    response = handler("InvalidationsFunction")(event)
    assert response["statusCode"] == HTTPStatus.BAD_REQUEST
    problem_of(response)


def test_missing_key_is_401(handler, load_event):
    event = load_event("invalidation")
    del event["headers"]["x-api-key"]
    assert handler("InvalidationsFunction")(event)["statusCode"] == HTTPStatus.UNAUTHORIZED
