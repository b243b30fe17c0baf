"""Feeds through the local stack over real HTTP: misses, hits, S3 events, invalidation, limits."""

from __future__ import annotations

import json
from http import HTTPStatus
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree

import boto3
import pytest

from offload import auth
from offload.feeds.cachekey import parse_feed_request
from offload.feeds.outcome import Outcome
from offload.files import Generation
from offload.table import CacheEntry
from tests.support import BUCKET_NAME, cache_status, plugins, stored_generations
from tests.support.stack import SIGNED_URL_TTL, wait_for_hit

FORMATS = {"json": "application/json", "xml": "application/xml"}


def recorded_object(client_id: str, category: str) -> str:
    """The object key the cache entry of one client's JSON catalog points at."""
    request = parse_feed_request("catalog.json", f"category={category}", client_id, plugins().feeds)
    return CacheEntry.get(CacheEntry.key_for(request.cache_id), CacheEntry.SORT).object_key


@pytest.mark.parametrize("fmt", FORMATS)
def test_miss_then_hit_once_the_recorder_has_run(local_stack, http, make_key, fmt):
    # GIVEN a client that has never asked for the catalog
    key, _ = make_key()
    url = local_stack.url(f"/feeds/catalog.{fmt}")

    # WHEN it asks, the file is generated and sent inline
    miss = http.get(url, headers={"X-Api-Key": key}, allow_redirects=False, timeout=30)
    assert miss.status_code == HTTPStatus.OK
    assert cache_status(miss.headers) == Outcome.STORED
    assert miss.headers["Content-Type"] == FORMATS[fmt]
    assert int(miss.headers["Content-Length"]) == len(miss.content) > 500_000
    if fmt == "json":
        assert len(json.loads(miss.content)["products"]) == 2000
    else:
        assert len(ElementTree.fromstring(miss.content).findall("product")) == 2000

    # THEN once the upload's S3 event reached the recorder, it is a redirect to that file
    hit = wait_for_hit(http, url, key)
    assert hit.status_code == HTTPStatus.TEMPORARY_REDIRECT, hit.headers
    assert hit.headers["Cache-Control"] == "private, no-store"
    assert hit.content == b""
    download = http.get(hit.headers["Location"], timeout=30)
    assert download.status_code == HTTPStatus.OK
    assert download.content == miss.content
    assert download.headers["Content-Type"] == FORMATS[fmt]


def test_signed_url_is_sigv4_for_the_exact_key_and_carries_no_api_key(local_stack, http, make_key):
    # GIVEN a client that passes its key in the query string, the worst case for leaking it
    key, client_id = make_key()
    url = local_stack.url(f"/feeds/catalog.json?category=toys&key={key}")
    http.get(url, allow_redirects=False, timeout=30)

    # WHEN the file is served from the bucket
    hit = wait_for_hit(http, url, key)
    assert hit.status_code == HTTPStatus.TEMPORARY_REDIRECT

    # THEN the URL is a SigV4 presigned GET of exactly that object, with the configured expiry
    location = urlsplit(hit.headers["Location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}" == local_stack.endpoint_url
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == [SIGNED_URL_TTL]
    assert query["X-Amz-Credential"][0].endswith("/s3/aws4_request")
    assert len(query["X-Amz-Signature"][0]) == 64
    # requests accepts gzip, so the URL is that of the file's gzip copy
    generation = Generation.of_object(recorded_object(client_id, "toys"))
    assert generation is not None
    assert unquote(location.path) == f"/{BUCKET_NAME}/{generation.gzip_key}"
    # AND nothing of the API key or any client secret is in it
    assert key not in hit.headers["Location"]
    assert not {name.lower() for name in query} - {
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-signedheaders",
        "x-amz-signature",
        "x-amz-security-token",
        # How to save the file: the feed's name and the generation's day, and its type.
        "response-content-disposition",
        "response-content-type",
    }


def test_invalidation_over_http_makes_the_next_request_regenerate(local_stack, http, make_key):
    # GIVEN a cached file
    key, client_id = make_key()
    admin_key, _ = make_key(scope=auth.SCOPE_ADMIN)
    url = local_stack.url("/feeds/catalog.json?category=books")
    http.get(url, headers={"X-Api-Key": key}, allow_redirects=False, timeout=30)
    before = wait_for_hit(http, url, key)
    assert before.status_code == HTTPStatus.TEMPORARY_REDIRECT

    # WHEN the client's files are invalidated
    answer = http.post(
        local_stack.url("/invalidations"),
        headers={"X-Api-Key": admin_key},
        json={"client": client_id},
        timeout=30,
    )
    assert answer.status_code == HTTPStatus.ACCEPTED
    assert answer.json()["invalidated"] == {"client": client_id, "soft": False}

    # THEN the next request generates afresh, and later hits point at the new file
    after = http.get(url, headers={"X-Api-Key": key}, allow_redirects=False, timeout=30)
    assert after.status_code == HTTPStatus.OK
    assert cache_status(after.headers) == Outcome.STORED
    hit = wait_for_hit(http, url, key)
    assert urlsplit(hit.headers["Location"]).path != urlsplit(before.headers["Location"]).path


def test_deleted_file_is_regenerated_after_the_removal_event(local_stack, http, make_key):
    # GIVEN a cached file
    key, client_id = make_key()
    url = local_stack.url("/feeds/catalog.xml?category=garden")
    http.get(url, headers={"X-Api-Key": key}, allow_redirects=False, timeout=30)
    assert wait_for_hit(http, url, key).status_code == HTTPStatus.TEMPORARY_REDIRECT

    # WHEN someone deletes its files from the bucket (ObjectRemoved events)
    s3 = boto3.client("s3")
    for object_key in stored_generations("catalog", client_id):
        s3.delete_object(Bucket=BUCKET_NAME, Key=object_key)

    # THEN the next request regenerates instead of redirecting to nothing
    after = http.get(url, headers={"X-Api-Key": key}, allow_redirects=False, timeout=30)
    assert after.status_code == HTTPStatus.OK
    assert cache_status(after.headers) == Outcome.STORED


def test_rate_limit_over_http(local_stack, http, make_key):
    # GIVEN a client allowed two requests an hour
    key, _ = make_key(hourly_limit=2)
    url = local_stack.url("/feeds/catalog.json?category=audio")
    for remaining in ("1", "0"):
        ok = http.get(url, headers={"X-Api-Key": key}, allow_redirects=False, timeout=30)
        assert ok.status_code in {HTTPStatus.OK, HTTPStatus.TEMPORARY_REDIRECT}
        assert ok.headers["RateLimit-Remaining"] == remaining

    # WHEN it asks a third time
    limited = http.get(url, headers={"X-Api-Key": key}, allow_redirects=False, timeout=30)

    # THEN it is told to come back later, with the limit's headers and a problem document
    assert limited.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert limited.headers["Content-Type"] == "application/problem+json"
    assert limited.headers["Retry-After"] == limited.headers["RateLimit-Reset"]
    assert limited.headers["RateLimit-Limit"] == "2"
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert limited.json()["status"] == HTTPStatus.TOO_MANY_REQUESTS


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, HTTPStatus.UNAUTHORIZED),
        ({"X-Api-Key": "not-a-key"}, HTTPStatus.FORBIDDEN),
        ({"Authorization": "Bearer demo-admin-key"}, HTTPStatus.FORBIDDEN),
    ],
)
def test_keys_are_checked_over_http(local_stack, http, headers, status):
    answer = http.get(
        local_stack.url("/feeds/catalog.json"), headers=headers, allow_redirects=False, timeout=30
    )
    assert answer.status_code == status
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["status"] == status


def test_demo_key_is_seeded(local_stack, http):
    answer = http.get(
        local_stack.url("/feeds/catalog.json?category=kitchen"),
        headers={"Authorization": "Bearer demo-feeds-key"},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code in {HTTPStatus.OK, HTTPStatus.TEMPORARY_REDIRECT}
    assert answer.headers["RateLimit-Limit"] == "1000"
