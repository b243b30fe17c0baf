"""Every file in events/ invokes its handler, as `sam local invoke -e` would."""

from __future__ import annotations

import json
from http import HTTPStatus

import boto3

from offload.feeds.outcome import Outcome
from offload.files import Generation
from offload.storage import upload
from tests.support import BUCKET_NAME, cache_status


def test_feed_request_event(handler, load_event, catalog, demo_keys):
    response = handler("FeedsFunction")(load_event("feed_request"))
    assert response["statusCode"] == HTTPStatus.OK
    assert cache_status(response["headers"]) == Outcome.STORED


def test_bearer_xml_request_event(handler, load_event, catalog, demo_keys):
    response = handler("FeedsFunction")(load_event("feed_request_xml_bearer"))
    assert response["statusCode"] == HTTPStatus.OK
    assert response["headers"]["Content-Type"] == "application/xml"


def test_feed_request_without_key_event(handler, load_event):
    response = handler("FeedsFunction")(load_event("feed_request_no_key"))
    assert response["statusCode"] == HTTPStatus.UNAUTHORIZED


def test_invalidation_event(handler, load_event, demo_keys):
    response = handler("InvalidationsFunction")(load_event("invalidation"))
    assert response["statusCode"] == HTTPStatus.ACCEPTED
    assert json.loads(response["body"])["invalidated"]["feed"] == "catalog"


def test_s3_object_created_and_removed_events(handler, load_event, aws):
    created = load_event("s3_object_created")
    generation = Generation.of_object(created["Records"][0]["s3"]["object"]["key"])
    assert generation is not None
    upload(boto3.client("s3"), BUCKET_NAME, generation, b"{}", content_type="application/json")
    recorder = handler("RecorderFunction")
    assert recorder(created) == {"recorded": ["advanced"]}
    assert recorder(load_event("s3_object_removed")) == {"recorded": ["dropped"]}
