"""Delivery: entity tags and 304s, links instead of redirects, download names in signed URLs."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from offload.feeds.delivery import LINK_MEDIA_TYPE
from offload.feeds.outcome import Outcome
from tests.support import cache_status, problem_of, signed_generation
from tests.support.feeds import download

PROBE = "/feeds/probe.json"


def repr_digest(data: bytes) -> str:
    """RFC 9530's `sha-256=:<base64>:`, computed here, not by the code under test."""
    return f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"


def raw_bytes(url: str) -> tuple[bytes, requests.Response]:
    """Exactly the bytes a URL returns, content coding left as it is."""
    response = requests.get(url, timeout=10, stream=True)
    assert response.status_code == HTTPStatus.OK, response.text
    return response.raw.read(decode_content=False), response


@pytest.fixture
def recorded(call_feed, make_key, probe, deliver_s3_events) -> tuple[str, dict]:
    """A client whose probe file is generated and recorded; its key and the 307 of a hit."""
    key, _ = make_key()
    call_feed(PROBE, key=key)
    deliver_s3_events()
    hit = call_feed(PROBE, key=key)
    assert hit["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    return key, hit


def test_every_stored_answer_names_its_generation_in_a_strong_etag(
    call_feed, make_key, probe, deliver_s3_events
):
    key, _ = make_key()
    stored = call_feed(PROBE, key=key)
    deliver_s3_events()
    hit = call_feed(PROBE, key=key)
    # The inline answer and the later redirect name the same generation, unquoted nowhere
    assert stored["headers"]["ETag"] == hit["headers"]["ETag"]
    assert hit["headers"]["ETag"] == signed_generation(hit["headers"]["Location"]).etag
    assert not hit["headers"]["ETag"].startswith("W/")


def test_the_current_etag_is_a_304_without_a_redirect_and_still_counts(call_feed, recorded):
    key, hit = recorded
    # WHEN the client asks again naming the file it has
    response = call_feed(PROBE, key=key, headers={"if-none-match": hit["headers"]["ETag"]})
    # THEN nothing to download: no Location, no body; and the request was counted
    assert response["statusCode"] == HTTPStatus.NOT_MODIFIED
    assert "Location" not in response["headers"]
    assert not response.get("body")
    assert response["headers"]["ETag"] == hit["headers"]["ETag"]
    assert cache_status(response["headers"]) == Outcome.HIT
    remaining = int(hit["headers"]["RateLimit-Remaining"])
    assert int(response["headers"]["RateLimit-Remaining"]) == remaining - 1


def test_an_older_etag_gets_the_current_file(call_feed, recorded):
    key, hit = recorded
    response = call_feed(PROBE, key=key, headers={"if-none-match": '"0000000000000000-aaaaaaaa"'})
    assert response["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    assert response["headers"]["ETag"] == hit["headers"]["ETag"]


@pytest.mark.parametrize(
    "ask",
    [
        pytest.param({"headers": {"accept": f"{LINK_MEDIA_TYPE}, */*;q=0.1"}}, id="accept"),
        pytest.param({"query": "redirect=false"}, id="query"),
    ],
)
def test_a_link_is_the_signed_url_as_json_for_clients_that_do_not_follow(call_feed, recorded, ask):
    key, hit = recorded
    response = call_feed(PROBE, key=key, **ask)
    assert response["statusCode"] == HTTPStatus.OK
    assert response["headers"]["Content-Type"] == LINK_MEDIA_TYPE
    assert response["headers"]["Cache-Control"] == "private, no-store"
    assert "Location" not in response["headers"]
    link = json.loads(response["body"])
    assert set(link) == {
        "url",
        "expires_at",
        "etag",
        "size",
        "content_type",
        "content_encoding",
        "digest",
    }
    body = download(link["url"])
    assert (link["etag"], link["size"], link["content_type"], link["content_encoding"]) == (
        hit["headers"]["ETag"],
        len(body),
        "application/json",
        None,
    )
    assert link["digest"] == repr_digest(body) == hit["headers"]["Repr-Digest"]
    assert datetime.fromisoformat(link["expires_at"]).timestamp() > 0


def test_a_link_for_a_cold_key_is_stored_not_inline(call_feed, make_key, probe):
    key, _ = make_key()
    response = call_feed(PROBE, key=key, query="redirect=false")
    assert response["statusCode"] == HTTPStatus.OK
    assert cache_status(response["headers"]) == Outcome.STORED
    link = json.loads(response["body"])
    assert download(link["url"]) == b'{"feed": "probe", "generation": 1}'


def test_a_redirect_option_other_than_true_or_false_is_a_counted_400(call_feed, make_key, probe):
    key, _ = make_key()
    response = call_feed(PROBE, key=key, query="redirect=maybe")
    assert response["statusCode"] == HTTPStatus.BAD_REQUEST
    assert problem_of(response)["status"] == HTTPStatus.BAD_REQUEST
    assert response["headers"]["RateLimit-Remaining"] == "999"


def test_the_signed_url_says_how_to_save_the_file(recorded):
    _, hit = recorded
    url = hit["headers"]["Location"]
    generation = signed_generation(url)
    query = parse_qs(urlsplit(url).query)
    disposition = f'attachment; filename="{generation.filename}"'
    assert query["response-content-disposition"] == [disposition]
    assert query["response-content-type"] == ["application/json"]
    assert generation.filename.startswith("probe-") and generation.filename.endswith(".json")
    answered = requests.get(url, timeout=10)
    assert answered.headers["Content-Disposition"] == disposition


@pytest.mark.parametrize(
    "accept_encoding, gzip",
    [
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("identity", False),
        (None, False),  # curl without --compressed: plain bytes
    ],
)
def test_the_gzip_copy_is_sent_only_to_clients_that_accept_gzip(
    call_feed, recorded, accept_encoding, gzip
):
    key, _ = recorded
    headers = {} if accept_encoding is None else {"accept-encoding": accept_encoding}
    response = call_feed(PROBE, key=key, headers=headers)
    url = response["headers"]["Location"]
    generation = signed_generation(url)
    assert urlsplit(url).path.endswith(".json.gz") is gzip
    assert response["headers"]["ETag"] == (generation.gzip_etag if gzip else generation.etag)
    stored = requests.get(url, timeout=10, stream=True)
    raw = stored.raw.read(decode_content=False)
    assert raw.startswith(b"\x1f\x8b") is gzip
    assert stored.headers.get("Content-Encoding") == ("gzip" if gzip else None)
    assert stored.headers["Content-Type"] == "application/json"


def test_either_copys_etag_is_a_304(call_feed, recorded):
    key, hit = recorded
    generation = signed_generation(hit["headers"]["Location"])
    for held in (generation.etag, generation.gzip_etag):
        response = call_feed(
            PROBE, key=key, headers={"if-none-match": held, "accept-encoding": "gzip"}
        )
        assert response["statusCode"] == HTTPStatus.NOT_MODIFIED


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_the_redirect_announces_the_digest_of_exactly_what_its_url_returns(
    call_feed, recorded, gzip
):
    key, _ = recorded
    headers = {"accept-encoding": "gzip"} if gzip else {}
    response = call_feed(PROBE, key=key, headers=headers)
    assert response["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    raw, stored = raw_bytes(response["headers"]["Location"])
    assert response["headers"]["Repr-Digest"] == repr_digest(raw)
    # The stored object says it too, for pages that cannot read the 307's headers
    assert f"sha-256=:{stored.headers['x-amz-meta-sha256']}:" == repr_digest(raw)


def test_a_gzip_link_names_its_encoding_size_and_digest(call_feed, recorded):
    key, _ = recorded
    response = call_feed(
        PROBE, key=key, query="redirect=false", headers={"accept-encoding": "gzip"}
    )
    link = json.loads(response["body"])
    raw, _ = raw_bytes(link["url"])
    assert raw.startswith(b"\x1f\x8b")
    assert (link["content_encoding"], link["size"], link["digest"]) == (
        "gzip",
        len(raw),
        repr_digest(raw),
    )


def test_a_link_to_a_fresh_generation_knows_its_digest_before_it_is_recorded(
    call_feed, make_key, probe
):
    key, _ = make_key()
    response = call_feed(PROBE, key=key, query="redirect=false")
    link = json.loads(response["body"])
    raw, _ = raw_bytes(link["url"])
    assert link["digest"] == repr_digest(raw)


def test_a_weak_etag_as_cloudfront_makes_it_still_matches(call_feed, recorded):
    key, hit = recorded
    weak = "W/" + hit["headers"]["ETag"]
    response = call_feed(PROBE, key=key, headers={"if-none-match": weak})
    assert response["statusCode"] == HTTPStatus.NOT_MODIFIED


def test_a_head_redirects_to_the_stored_file_and_counts(call_feed, recorded):
    # (That the URL is signed for HEAD is checked where signatures are: the local stack.)
    key, hit = recorded
    response = call_feed(PROBE, key=key, method="HEAD")
    assert response["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    assert signed_generation(response["headers"]["Location"]) == signed_generation(
        hit["headers"]["Location"]
    )
    assert response["headers"]["Repr-Digest"] == hit["headers"]["Repr-Digest"]
    assert int(response["headers"]["RateLimit-Remaining"]) == (
        int(hit["headers"]["RateLimit-Remaining"]) - 1
    )


def test_a_head_never_generates(call_feed, make_key, probe):
    key, _ = make_key()
    response = call_feed(PROBE, key=key, method="HEAD")
    assert response["statusCode"] == HTTPStatus.NOT_FOUND
    assert problem_of(response)["title"] == "Not generated"
    assert probe.calls == 0
