"""GET /feeds/{feed}.{format} through the handler: miss, hit, invalidation, failure."""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from xml.etree import ElementTree

import boto3
import pytest

from offload.config import get_settings
from offload.feeds import REGISTRY, Feed
from offload.feeds.outcome import Outcome
from offload.table import RebuildLock
from tests.support import BUCKET_NAME, cache_status, problem_of, stored_generations
from tests.support.feeds import age_entries, download

MB = 1024 * 1024


def test_first_request_generates_and_answers_inline(call_feed, make_key, catalog):
    # GIVEN a client and a catalog, and nothing generated yet
    key, client_id = make_key()
    # WHEN the client asks for the JSON catalog
    response = call_feed("/feeds/catalog.json", key=key)
    # THEN it is generated, answered inline, and stored under a new object key
    assert response["statusCode"] == HTTPStatus.OK
    assert cache_status(response["headers"]) == Outcome.STORED
    assert response["headers"]["Content-Type"] == "application/json"
    assert response["headers"]["Cache-Control"] == "private, no-store"
    body = response["body"].encode()
    assert 0.5 * MB <= len(body) <= 2 * MB
    assert len(json.loads(body)["products"]) == catalog
    [stored] = stored_generations()
    assert stored.startswith(f"files/catalog/{client_id}/") and stored.endswith(".json")


def test_xml_format_is_real_xml_of_the_same_products(call_feed, make_key, catalog):
    key, _ = make_key()
    response = call_feed("/feeds/catalog.xml", key=key)
    assert response["statusCode"] == HTTPStatus.OK
    assert response["headers"]["Content-Type"] == "application/xml"
    body = response["body"].encode()
    assert 0.5 * MB <= len(body) <= 2 * MB
    assert len(ElementTree.fromstring(body).findall("product")) == catalog


def test_hit_redirects_with_signed_url_to_identical_bytes(
    call_feed, make_key, catalog, deliver_s3_events
):
    # GIVEN a generated file whose upload the recorder has seen
    key, _ = make_key()
    first = call_feed(key=key)
    assert deliver_s3_events() == 1
    # WHEN the client asks again
    second = call_feed(key=key)
    # THEN it is redirected to a signed URL that serves the same bytes
    assert second["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    assert cache_status(second["headers"]) == Outcome.HIT
    assert second["headers"]["Cache-Control"] == "private, no-store"
    assert download(second["headers"]["Location"]) == first["body"].encode()
    assert len(stored_generations()) == 1


def test_catalog_is_deterministic_for_the_same_data(
    call_feed, make_key, catalog, invalidate, deliver_s3_events
):
    key, _ = make_key()
    first = call_feed(key=key)
    deliver_s3_events()
    invalidate({"feed": "catalog"})
    second = call_feed(key=key)
    assert cache_status(second["headers"]) == Outcome.STORED
    assert second["body"] == first["body"]
    assert len(stored_generations()) == 2


def test_parameters_are_canonicalised_into_one_cache_key(
    call_feed, make_key, catalog, deliver_s3_events
):
    key, _ = make_key()
    shoes = call_feed(key=key, query="category=shoes")
    deliver_s3_events()
    again = call_feed(key=key, query="category=%20SHOES%20")
    assert cache_status(again["headers"]) == Outcome.HIT
    products = json.loads(shoes["body"])["products"]
    assert products and {p["category"] for p in products} == {"shoes"}


def test_clients_never_share_a_file(call_feed, make_key, probe, deliver_s3_events):
    first_key, _ = make_key()
    second_key, _ = make_key()
    call_feed("/feeds/probe.json", key=first_key)
    deliver_s3_events()
    assert cache_status(call_feed("/feeds/probe.json", key=second_key)["headers"]) == Outcome.STORED
    assert probe.calls == 2


@pytest.mark.parametrize(
    "scope", [{"scope": "global"}, {"feed": "probe"}, {"client": "{client}"}], ids=str
)
def test_invalidation_makes_the_next_request_regenerate(
    call_feed, make_key, probe, invalidate, deliver_s3_events, scope
):
    # GIVEN a fresh, recorded file
    key, client_id = make_key()
    call_feed("/feeds/probe.json", key=key)
    deliver_s3_events()
    assert cache_status(call_feed("/feeds/probe.json", key=key)["headers"]) == Outcome.HIT
    # WHEN an invalidation covering it is posted
    body = {name: value.format(client=client_id) for name, value in scope.items()}
    assert invalidate(body)["statusCode"] == HTTPStatus.ACCEPTED
    # THEN the next request regenerates
    response = call_feed("/feeds/probe.json", key=key)
    assert cache_status(response["headers"]) == Outcome.STORED
    assert json.loads(response["body"])["generation"] == 2


def test_client_invalidation_leaves_other_clients_fresh(
    call_feed, make_key, probe, invalidate, deliver_s3_events
):
    mine, my_id = make_key()
    theirs, _ = make_key()
    call_feed("/feeds/probe.json", key=mine)
    call_feed("/feeds/probe.json", key=theirs)
    deliver_s3_events()
    invalidate({"client": my_id})
    assert cache_status(call_feed("/feeds/probe.json", key=theirs)["headers"]) == Outcome.HIT
    assert cache_status(call_feed("/feeds/probe.json", key=mine)["headers"]) == Outcome.STORED


def test_invalidation_during_generation_still_forces_a_rebuild(
    call_feed, make_key, probe, invalidate, deliver_s3_events
):
    # GIVEN an invalidation that lands while the first generation runs
    key, _ = make_key()
    probe.during = lambda: invalidate({"feed": "probe"}) if probe.calls == 1 else None
    call_feed("/feeds/probe.json", key=key)
    deliver_s3_events()
    # WHEN the next request comes, after the upload was recorded
    response = call_feed("/feeds/probe.json", key=key)
    # THEN the file, started before the invalidation, is not served
    assert cache_status(response["headers"]) == Outcome.STORED
    assert probe.calls == 2


def test_object_deleted_behind_the_entry_is_regenerated(
    call_feed, make_key, probe, deliver_s3_events
):
    key, _ = make_key()
    call_feed("/feeds/probe.json", key=key)
    deliver_s3_events()
    [stored] = stored_generations()
    boto3.client("s3").delete_object(Bucket=BUCKET_NAME, Key=stored)
    response = call_feed("/feeds/probe.json", key=key)
    assert response["statusCode"] == HTTPStatus.OK
    assert cache_status(response["headers"]) == Outcome.STORED
    assert probe.calls == 2


def test_old_file_is_served_stale_when_the_generator_fails(
    call_feed, make_key, probe, deliver_s3_events
):
    key, _ = make_key()
    first = call_feed("/feeds/probe.json", key=key)
    deliver_s3_events()
    age_entries(by=7200)
    probe.fail = RuntimeError("upstream database is down")
    response = call_feed("/feeds/probe.json", key=key)
    assert response["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    assert cache_status(response["headers"]) == Outcome.STALE_ON_ERROR
    assert download(response["headers"]["Location"]) == first["body"].encode()
    assert lock_count() == 0


def test_generator_failure_without_a_file_is_a_502_problem(call_feed, make_key, probe):
    key, _ = make_key()
    probe.fail = RuntimeError("upstream database is down")
    response = call_feed("/feeds/probe.json", key=key)
    assert response["statusCode"] == HTTPStatus.BAD_GATEWAY
    assert problem_of(response)["title"] == "Generation failed"
    assert "upstream" not in response["body"]
    assert "RateLimit-Remaining" in response["headers"]
    assert lock_count() == 0


def test_generator_timeout_is_a_503_with_retry_after(call_feed, make_key):
    key, _ = make_key()
    gate = threading.Event()
    REGISTRY.register(
        Feed(
            name="sluggish",
            formats={"json": "application/json"},
            generate=lambda request: b"{}" if gate.wait(10) else b"",
            generation_timeout_seconds=0.5,
        )
    )
    try:
        response = call_feed("/feeds/sluggish.json", key=key)
    finally:
        gate.set()
        REGISTRY.unregister("sluggish")
    assert response["statusCode"] == HTTPStatus.SERVICE_UNAVAILABLE
    assert response["headers"]["Retry-After"] == str(get_settings().retry_after_seconds)
    problem_of(response)
    assert lock_count() == 0


@pytest.mark.parametrize(
    ("path", "query", "status"),
    [
        ("/feeds/catalog.json", "colour=red", HTTPStatus.BAD_REQUEST),
        ("/feeds/catalog.json", "category=shoes&category=toys", HTTPStatus.BAD_REQUEST),
        ("/feeds/catalog.json", "category=..%2F..%2Fetc", HTTPStatus.BAD_REQUEST),
        ("/feeds/catalog.json", "category=sh%00oes", HTTPStatus.BAD_REQUEST),
        ("/feeds/..%2F..%2Fsecret.json", "", HTTPStatus.BAD_REQUEST),
        ("/feeds/CATALOG.json", "", HTTPStatus.BAD_REQUEST),
        ("/feeds/catalog", "", HTTPStatus.BAD_REQUEST),
        ("/feeds/cat%0Alog.json", "", HTTPStatus.BAD_REQUEST),
        ("/feeds/nope.json", "", HTTPStatus.NOT_FOUND),
        ("/feeds/catalog.csv", "", HTTPStatus.NOT_FOUND),
    ],
)
def test_bad_input_is_a_4xx_problem(call_feed, make_key, path, query, status):
    key, _ = make_key()
    response = call_feed(path, key=key, query=query)
    assert response["statusCode"] == status
    problem_of(response)
    assert response["headers"]["RateLimit-Remaining"] == "999"
    assert stored_generations() == []


def test_unknown_route_is_a_404_problem(handler, make_key):
    from tests.support import feed_event

    event = feed_event("/feeds/catalog.json/extra")
    response = handler("FeedsFunction")(event)
    assert response["statusCode"] == HTTPStatus.NOT_FOUND
    problem_of(response)


def lock_count() -> int:
    return sum(1 for _ in RebuildLock.scan(RebuildLock.sk == RebuildLock.SORT))
