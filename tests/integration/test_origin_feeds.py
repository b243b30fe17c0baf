"""The demo's origin-backed feed through the local stack, against an origin the test controls.

`price-list` fetches `/clients/{client_id}/price-list.csv` from the stack's OriginBaseUrl,
here a loopback origin in the test process: the demo origin for every client, except the
clients a test scripts (truncated, wrongly encoded, slow, failing answers). Each test uses
a fresh client, so its file and its script are its own.
"""

from __future__ import annotations

import gzip
from http import HTTPStatus

import boto3
import pytest
import requests

from offload.feeds.outcome import Outcome
from offload.table import CacheEntry
from offload_local.origin import TOKEN, Answer, price_list
from tests.support import BUCKET_NAME, cache_status
from tests.support.origin import ScriptedOrigin
from tests.support.stack import RunningStack, wait_for_hit

FEED = "/feeds/price-list.csv"
# The feed's generation timeout (offload_demo.origin_feeds), which a slow origin outlasts.
GENERATION_TIMEOUT = 10.0


def ask(http: requests.Session, stack: RunningStack, key: str, query: str = "currency=eur"):
    return http.get(
        stack.url(f"{FEED}?{query}"), headers={"X-Api-Key": key}, allow_redirects=False, timeout=60
    )


def stored_files(client_id: str) -> list[str]:
    """The client's price-list files in the stack's bucket, gzip copies included."""
    listed = boto3.client("s3").list_objects_v2(
        Bucket=BUCKET_NAME, Prefix=f"files/price-list/{client_id}/"
    )
    return sorted(item["Key"] for item in listed.get("Contents", []))


def age(client_id: str, *, by: float) -> None:
    """Make the client's recorded price list look `by` seconds older (renewals included)."""
    for entry in CacheEntry.scan(CacheEntry.object_key.contains(f"/price-list/{client_id}/")):
        older = [CacheEntry.generated_at.set(float(entry.generated_at) - by)]
        if entry.renewed_at is not None:
            older.append(CacheEntry.renewed_at.set(float(entry.renewed_at) - by))
        entry.update(actions=older)


def test_a_miss_fetches_the_origin_with_the_credential_and_serves_its_bytes(
    local_stack: RunningStack, stack_origin: ScriptedOrigin, stack_aws, make_key, http
):
    key, client_id = make_key()
    # WHEN a client asks for its price list in dollars
    response = ask(http, local_stack, key, "currency=usd")
    # THEN the origin was asked once, with the credential the stack keeps in SSM, gzip allowed
    [request] = stack_origin.received(client_id)
    assert request["authorization"] == TOKEN
    assert request["accept-encoding"] == "gzip, deflate"
    # AND the answer is the origin's file, decoded once though it came gzip-encoded
    assert response.status_code == HTTPStatus.OK
    assert cache_status(response.headers) == Outcome.STORED
    assert response.content == price_list(client_id, "usd")
    files = stored_files(client_id)
    assert len(files) == 2  # the file and its gzip copy
    plain, copy = (boto3.client("s3").get_object(Bucket=BUCKET_NAME, Key=k) for k in files)
    assert gzip.decompress(copy["Body"].read()) == plain["Body"].read() == response.content


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(Answer(body=b"sku,price\n" * 50, declared_length=10_000), id="truncated"),
        pytest.param(
            Answer(body=b"sku,price\nSKU-1,2.00\n", headers={"Content-Encoding": "gzip"}),
            id="not-the-gzip-it-names",
        ),
        pytest.param(Answer(body=b"sku,price\n", headers={"Content-Encoding": "br"}), id="br"),
        pytest.param(Answer(HTTPStatus.INTERNAL_SERVER_ERROR, b"database down\n"), id="500"),
        pytest.param(Answer(body=b"sku\n", declared_length=2), id="longer-than-declared"),
    ],
)
def test_a_bad_origin_answer_stores_nothing_and_is_a_502(
    answer: Answer, local_stack, stack_origin: ScriptedOrigin, stack_aws, make_key, http
):
    key, client_id = make_key()
    stack_origin.script(client_id, answer)
    response = ask(http, local_stack, key)
    assert response.status_code == HTTPStatus.BAD_GATEWAY
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["title"] == "Generation failed"
    assert stored_files(client_id) == []
    # AND the lock went with the failure: the next request asks the origin again
    ask(http, local_stack, key)
    assert len(stack_origin.received(client_id)) == 2


def test_a_slow_origin_is_a_503_with_retry_after(
    local_stack, stack_origin: ScriptedOrigin, stack_aws, make_key, http
):
    key, client_id = make_key()
    # An origin that sends its headers, then its body a byte at a time, too slowly
    stack_origin.script(client_id, Answer(body=b"x" * 1000, drip=0.05))
    response = ask(http, local_stack, key)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["title"] == "Generation timed out"
    assert int(response.headers["Retry-After"]) >= 1
    assert stored_files(client_id) == []


def test_a_failing_origin_after_max_age_serves_the_stale_file(
    local_stack, stack_origin: ScriptedOrigin, stack_aws, make_key, http
):
    # GIVEN a stored price list, past its max age
    key, client_id = make_key()
    url = local_stack.url(f"{FEED}?currency=eur")
    assert wait_for_hit(http, url, key).status_code == HTTPStatus.TEMPORARY_REDIRECT
    age(client_id, by=3600)
    # WHEN the origin now fails
    stack_origin.script(client_id, Answer(HTTPStatus.SERVICE_UNAVAILABLE, b"maintenance\n"))
    response = ask(http, local_stack, key)
    # THEN the old file answers, and nothing new was stored
    assert response.status_code == HTTPStatus.TEMPORARY_REDIRECT
    assert cache_status(response.headers) == Outcome.STALE_ON_ERROR
    assert http.get(response.headers["Location"], timeout=30).content == price_list(
        client_id, "eur"
    )
    assert len(stored_files(client_id)) == 2


def test_a_304_from_the_origin_renews_the_file_without_a_copy(
    local_stack, stack_origin: ScriptedOrigin, stack_aws, make_key, http
):
    # GIVEN a stored price list, past its max age
    key, client_id = make_key()
    url = local_stack.url(f"{FEED}?currency=gbp")
    first = wait_for_hit(http, url, key)
    assert first.status_code == HTTPStatus.TEMPORARY_REDIRECT
    [sent] = stack_origin.received(client_id)
    age(client_id, by=3600)
    # WHEN it is asked for again (the demo origin answers 304 to its own ETag)
    renewed = ask(http, local_stack, key, "currency=gbp")
    # THEN the origin was asked conditionally, with what it sent last time
    conditional = stack_origin.received(client_id)[-1]
    assert conditional["if-none-match"]
    assert conditional["if-modified-since"]
    # AND the same file answers, renewed, and no copy was stored
    assert renewed.status_code == HTTPStatus.TEMPORARY_REDIRECT
    assert cache_status(renewed.headers) == "fwd=stale; fwd-status=304"
    assert renewed.headers["ETag"] == first.headers["ETag"]
    assert len(stored_files(client_id)) == 2
    # AND it is fresh again: a hit that asks the origin nothing
    asked = len(stack_origin.received(client_id))
    again = ask(http, local_stack, key, "currency=gbp")
    assert cache_status(again.headers) == Outcome.HIT
    assert len(stack_origin.received(client_id)) == asked
    assert http.get(again.headers["Location"], timeout=30).content == price_list(client_id, "gbp")
    assert sent["authorization"] == conditional["authorization"] == TOKEN
