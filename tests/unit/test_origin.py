"""Origin-backed feeds through the feeds handler: fetched once, checked, stored, renewed.

The origin is a fake urllib3 transport (unit tests open no socket): its answers are real
`urllib3.HTTPResponse` objects over scripted bytes, so urllib3's own length checks run.
"""

from __future__ import annotations

import ast
import gzip
import json
import threading
import zlib
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

import boto3
import pytest
import urllib3.exceptions

from offload.config import (
    ORIGIN_BASE_URL,
    ORIGIN_CREDENTIAL_PARAMETER,
    ORIGIN_CREDENTIAL_SECRET,
    ConfigurationError,
    Settings,
)
from offload.feeds import Parameter
from offload.feeds import origin as origin_module
from offload.feeds.origin import Origin, OriginClient, origin_feed
from offload.runtime import get_runtime
from tests.support import BUCKET_NAME, ROOT, cache_status, problem_of, reset_container_state
from tests.support import stored_generations as stored
from tests.support.feeds import age_entries, download
from tests.support.origin import BASE_URL, CSV, Answer, FakeOrigin, prices_feed

PRICES = "/feeds/prices.csv"


@pytest.fixture
def prices(origin: FakeOrigin) -> Iterator[None]:
    with prices_feed():
        yield


def get(call_feed: Callable[..., dict], key: str, query: str = "currency=eur") -> dict:
    return call_feed(PRICES, key=key, query=query)


def test_a_miss_fetches_the_origin_once_and_stores_its_bytes(
    call_feed, make_key, origin: FakeOrigin, prices
):
    key, client_id = make_key()
    origin.answer(Answer(body=gzip.compress(CSV), headers={"Content-Encoding": "gzip"}))
    # WHEN a client asks for its price list
    response = get(call_feed, key)
    # THEN the origin was asked once, for that client's file and currency
    assert response["statusCode"] == HTTPStatus.OK
    assert cache_status(response["headers"]) == "fwd=miss; stored"
    [sent] = origin.sent
    assert sent.url == f"{BASE_URL}/clients/{client_id}/prices.csv?currency=eur"
    assert sent.headers["Accept-Encoding"] == "gzip, deflate"
    assert "If-None-Match" not in sent.headers
    # AND the answer, the stored file and its gzip copy are the decoded bytes, decoded once
    assert response["body"].encode() == CSV
    [key_stored] = stored("prices")
    s3 = boto3.client("s3")
    assert s3.get_object(Bucket=BUCKET_NAME, Key=key_stored)["Body"].read() == CSV
    copy = s3.get_object(Bucket=BUCKET_NAME, Key=key_stored + ".gz")["Body"].read()
    assert gzip.decompress(copy) == CSV


@pytest.mark.parametrize(
    "encoded",
    [
        pytest.param(lambda data: ({}, data), id="identity"),
        pytest.param(lambda data: ({"Content-Encoding": "identity"}, data), id="identity-named"),
        pytest.param(lambda data: ({"Content-Encoding": "gzip"}, gzip.compress(data)), id="gzip"),
        pytest.param(
            lambda data: ({"Content-Encoding": "x-gzip"}, gzip.compress(data)), id="x-gzip"
        ),
        pytest.param(
            lambda data: ({"Content-Encoding": "deflate"}, zlib.compress(data)), id="zlib"
        ),
        pytest.param(
            lambda data: ({"Content-Encoding": "deflate"}, zlib.compress(data)[2:-4]),
            id="raw-deflate",
        ),
        pytest.param(
            lambda data: ({"Content-Encoding": "gzip, gzip"}, gzip.compress(gzip.compress(data))),
            id="gzip-twice",
        ),
        pytest.param(
            lambda data: (
                {"Content-Encoding": "gzip"},
                gzip.compress(data[:9]) + gzip.compress(data[9:]),
            ),
            id="gzip-members",
        ),
    ],
)
def test_the_stored_file_is_right_whatever_encoding_the_origin_sent(
    encoded, call_feed, make_key, origin: FakeOrigin, prices, deliver_s3_events
):
    headers, body = encoded(CSV)
    origin.answer(Answer(body=body, headers=headers))
    key, _ = make_key()
    assert get(call_feed, key)["body"].encode() == CSV
    deliver_s3_events()
    hit = get(call_feed, key)
    assert download(hit["headers"]["Location"]) == CSV
    [key_stored] = stored("prices")
    copy = boto3.client("s3").get_object(Bucket=BUCKET_NAME, Key=key_stored + ".gz")
    assert gzip.decompress(copy["Body"].read()) == CSV


BAD_ANSWERS = {
    "server-error": Answer(HTTPStatus.INTERNAL_SERVER_ERROR, b"oops"),
    "not-found": Answer(HTTPStatus.NOT_FOUND, b"no such client"),
    "redirect": Answer(HTTPStatus.FOUND, b"", {"Location": "https://elsewhere.test/"}),
    "not-modified-unasked": Answer(HTTPStatus.NOT_MODIFIED),
    "truncated": Answer(body=CSV[:20], declared_length=len(CSV)),
    "longer-than-declared": Answer(body=CSV, declared_length=20),
    "not-gzip": Answer(body=CSV, headers={"Content-Encoding": "gzip"}),
    "gzip-cut-short": Answer(
        body=gzip.compress(CSV * 50)[:40], headers={"Content-Encoding": "gzip"}
    ),
    "deflate-with-trailing-bytes": Answer(
        body=zlib.compress(CSV) + b"junk", headers={"Content-Encoding": "deflate"}
    ),
    "unknown-encoding": Answer(body=CSV, headers={"Content-Encoding": "br"}),
    "over-the-size-limit": Answer(body=b"x" * 2048),
    "inflates-over-the-limit": Answer(
        body=gzip.compress(b"x" * 100_000), headers={"Content-Encoding": "gzip"}
    ),
    "bad-content-length": Answer(body=CSV, headers={}, declared_length=-1),
}


@pytest.mark.parametrize("answer", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
def test_a_bad_answer_stores_nothing_and_is_a_502(
    answer: Answer, call_feed, make_key, origin: FakeOrigin
):
    # GIVEN a feed whose files may be at most 1 KiB, and an origin answering badly
    origin.answer(answer)
    key, _ = make_key()
    with prices_feed(max_bytes=1024):
        # WHEN it is asked twice
        first = get(call_feed, key)
        second = get(call_feed, key)
    # THEN each is a 502 problem, nothing is stored, and the lock did not outlive the failure
    assert first["statusCode"] == HTTPStatus.BAD_GATEWAY
    assert problem_of(first)["title"] == "Generation failed"
    assert second["statusCode"] == HTTPStatus.BAD_GATEWAY
    assert stored() == []
    assert len(origin.sent) == 2


def test_an_origin_that_cannot_be_reached_is_a_502(call_feed, make_key, origin, prices):
    origin.error = urllib3.exceptions.NewConnectionError(None, "connection refused")  # type: ignore[arg-type]
    key, _ = make_key()
    response = get(call_feed, key)
    assert response["statusCode"] == HTTPStatus.BAD_GATEWAY
    assert stored() == []


def test_a_slow_origin_is_a_503_with_retry_after_and_stores_nothing(
    call_feed, make_key, origin: FakeOrigin
):
    # GIVEN an origin that does not answer within the feed's generation timeout
    origin.gate = threading.Event()
    key, _ = make_key()
    with prices_feed(generation_timeout_seconds=0.2):
        response = get(call_feed, key)
    # THEN a 503 problem says when to retry, and nothing was stored
    assert response["statusCode"] == HTTPStatus.SERVICE_UNAVAILABLE
    assert problem_of(response)["title"] == "Generation timed out"
    assert int(response["headers"]["Retry-After"]) >= 1
    origin.gate.set()
    assert stored() == []


def test_a_read_timeout_from_urllib3_is_a_503(call_feed, make_key, origin, prices):
    origin.error = urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out")  # type: ignore[arg-type]
    key, _ = make_key()
    response = get(call_feed, key)
    assert response["statusCode"] == HTTPStatus.SERVICE_UNAVAILABLE
    assert "Retry-After" in response["headers"]


def test_a_failed_fetch_after_max_age_serves_the_stale_file(
    call_feed, make_key, origin: FakeOrigin, prices, deliver_s3_events
):
    # GIVEN a stored price list past its max age
    key, _ = make_key()
    get(call_feed, key)
    deliver_s3_events()
    age_entries(by=7200)
    # WHEN the origin now fails
    origin.answer(Answer(HTTPStatus.BAD_GATEWAY, b"down"))
    response = get(call_feed, key)
    # THEN the old file answers (stale-if-error), and no copy was stored
    assert response["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    assert cache_status(response["headers"]) == "hit; fwd=stale; detail=error"
    assert download(response["headers"]["Location"]) == CSV
    assert len(stored()) == 1


def test_a_rebuild_after_max_age_asks_conditionally_and_a_304_renews_the_file(
    call_feed, make_key, origin: FakeOrigin, prices, deliver_s3_events
):
    # GIVEN a price list stored with the origin's validators, now past its max age
    modified = "Tue, 01 Dec 2026 09:00:00 GMT"
    origin.answer(Answer(body=CSV, headers={"ETag": '"v1"', "Last-Modified": modified}))
    key, _ = make_key()
    get(call_feed, key)
    deliver_s3_events()
    [first] = stored()
    age_entries(by=7200)
    # WHEN the origin says nothing changed
    origin.answer(Answer(HTTPStatus.NOT_MODIFIED, headers={"ETag": '"v1"'}))
    renewed = get(call_feed, key)
    # THEN it was asked with what it sent last time
    assert origin.sent[-1].headers["If-None-Match"] == '"v1"'
    assert origin.sent[-1].headers["If-Modified-Since"] == modified
    # AND the current file answers, renewed, with no copy stored
    assert renewed["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    assert cache_status(renewed["headers"]) == "fwd=stale; fwd-status=304"
    assert download(renewed["headers"]["Location"]) == CSV
    assert stored() == [first]
    # AND it is fresh again: the next request is a hit that does not ask the origin
    asked = len(origin.sent)
    again = get(call_feed, key)
    assert cache_status(again["headers"]) == "hit"
    assert len(origin.sent) == asked


def test_a_changed_file_after_max_age_is_stored_anew(
    call_feed, make_key, origin: FakeOrigin, prices, deliver_s3_events
):
    key, _ = make_key()
    get(call_feed, key)
    deliver_s3_events()
    age_entries(by=7200)
    newer = CSV + b"SKU-000003,1.00,EUR\n"
    origin.answer(Answer(body=newer, headers={"ETag": '"v2"'}))
    # WHEN the conditional request gets a 200
    answer = get(call_feed, key)
    # THEN the new bytes answer and are stored beside the old
    assert origin.sent[-1].headers["If-None-Match"] == '"v1"'
    assert cache_status(answer["headers"]) == "fwd=miss; stored"
    assert answer["body"].encode() == newer
    assert len(stored()) == 2


def test_after_an_invalidation_the_origin_is_asked_unconditionally(
    call_feed, make_key, origin: FakeOrigin, prices, deliver_s3_events, invalidate
):
    key, _ = make_key()
    get(call_feed, key)
    deliver_s3_events()
    invalidate({"feed": "prices", "soft": True})
    # WHEN the file is rebuilt after a (soft) invalidation
    answer = get(call_feed, key)
    # THEN no validator went with the request: the origin may not know what changed
    assert "If-None-Match" not in origin.sent[-1].headers
    assert cache_status(answer["headers"]) == "fwd=miss; stored"


def test_the_credential_from_ssm_is_sent_read_once_and_never_logged(
    call_feed, make_key, origin: FakeOrigin, prices, monkeypatch, capsys
):
    # GIVEN the credential in an SSM SecureString the settings name
    secret = "Bearer origin-secret-4711"
    boto3.client("ssm").put_parameter(
        Name="/offload-test/origin", Value=secret, Type="SecureString"
    )
    monkeypatch.setenv(ORIGIN_CREDENTIAL_PARAMETER, "/offload-test/origin")
    reset_container_state()
    reads: list[Any] = []
    real = origin_module._read_credential
    monkeypatch.setattr(origin_module, "_read_credential", lambda s: reads.append(s) or real(s))
    key, _ = make_key()
    # WHEN two files are fetched in one container, one of them failing
    get(call_feed, key)
    origin.answer(Answer(HTTPStatus.INTERNAL_SERVER_ERROR, b"no"))
    get(call_feed, key, query="currency=usd")
    # THEN both requests carried it, it was read once, and no log line holds it
    assert [sent.headers["Authorization"] for sent in origin.sent] == [secret, secret]
    assert len(reads) == 1
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err


def test_the_credential_may_come_from_secrets_manager_under_its_own_header(
    call_feed, make_key, origin: FakeOrigin, prices, monkeypatch
):
    arn = boto3.client("secretsmanager").create_secret(
        Name="offload-test/origin", SecretString="token-0815"
    )["ARN"]
    monkeypatch.setenv(ORIGIN_CREDENTIAL_SECRET, arn)
    monkeypatch.setenv("ORIGIN_CREDENTIAL_HEADER", "X-Origin-Token")
    reset_container_state()
    key, _ = make_key()
    get(call_feed, key)
    assert origin.sent[0].headers["X-Origin-Token"] == "token-0815"
    assert "Authorization" not in origin.sent[0].headers


def test_an_unreadable_credential_is_a_503_and_fetches_nothing(
    call_feed, make_key, origin: FakeOrigin, prices, monkeypatch
):
    monkeypatch.setenv(ORIGIN_CREDENTIAL_PARAMETER, "/offload-test/missing")
    reset_container_state()
    key, _ = make_key()
    response = get(call_feed, key)
    assert response["statusCode"] == HTTPStatus.SERVICE_UNAVAILABLE
    assert origin.sent == []


def test_a_path_parameter_the_request_lacks_is_a_400(call_feed, make_key, origin: FakeOrigin):
    key, _ = make_key()
    with prices_feed(url="/prices/{currency}.csv"):
        response = get(call_feed, key, query="")
        assert response["statusCode"] == HTTPStatus.BAD_REQUEST
        assert get(call_feed, key, query="currency=usd")["statusCode"] == HTTPStatus.OK
    assert [sent.url for sent in origin.sent] == [f"{BASE_URL}/prices/usd.csv"]


def test_a_shared_feed_fills_no_client_and_values_are_quoted():
    job = origin_module.GenerationRequest(
        feed="rates", format="json", client_id="_shared", params={"day": "2026-12-01 x"}
    )
    origin = Origin("/rates/{day}.{format}")
    assert origin.target("https://api.test/", job) == "https://api.test/rates/2026-12-01%20x.json"
    with pytest.raises(ValueError, match="shared feed"):
        origin_feed("rates", formats={"json": "application/json"}, url="/{client_id}", shared=True)
    with pytest.raises(ValueError, match="does not declare"):
        origin_feed("rates", formats={"json": "application/json"}, url="/{region}")
    declared = origin_feed(
        "rates",
        formats={"json": "application/json"},
        url="/rates.{format}?v=2",
        parameters=(Parameter("day"),),
    )
    assert isinstance(declared.generate, Origin)
    assert declared.generate.target("https://api.test", job) == (
        "https://api.test/rates.json?v=2&day=2026-12-01+x"
    )


def test_without_a_base_url_an_origin_feed_fails_as_a_generation_does(
    call_feed, make_key, aws, monkeypatch
):
    monkeypatch.setattr(
        origin_module,
        "origin_client",
        lambda: OriginClient(get_runtime().settings, pools=FakeOrigin()),
    )
    key, _ = make_key()
    with prices_feed():
        response = get(call_feed, key)
    assert response["statusCode"] == HTTPStatus.BAD_GATEWAY
    assert json.loads(response["body"])["title"] == "Generation failed"


def test_origin_settings_are_checked():
    with pytest.raises(ConfigurationError, match=ORIGIN_BASE_URL):
        Settings.from_mapping({"TABLE_NAME": "t", ORIGIN_BASE_URL: "ftp://files.test"})
    with pytest.raises(ConfigurationError, match="not both"):
        Settings.from_mapping(
            {"TABLE_NAME": "t", ORIGIN_CREDENTIAL_PARAMETER: "/a", ORIGIN_CREDENTIAL_SECRET: "b"}
        )
    with pytest.raises(ConfigurationError, match="ORIGIN_CREDENTIAL_HEADER"):
        Settings.from_mapping({"TABLE_NAME": "t", "ORIGIN_CREDENTIAL_HEADER": "Bad Header"})
    settings = Settings.from_mapping({"TABLE_NAME": "t", ORIGIN_BASE_URL: BASE_URL})
    assert settings.origin_base_url == BASE_URL
    assert settings.origin_credential_header == "Authorization"


def test_no_product_module_imports_the_origin_module():
    # Feeds without an origin never load it: only a team's module that declares one does.
    product = ROOT / "layers" / "common" / "offload"
    importers = set()
    for path in product.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            if "offload.feeds.origin" in names:
                importers.add(path.relative_to(product).as_posix())
    assert importers == set()


def test_the_docs_declare_the_feed_the_demo_declares():
    # The page's sample is the demo's own declaration, which these tests run.
    page = (ROOT / "docs" / "origin-feeds.md").read_text()
    sample = page.split("```python\n", 1)[1].split("```", 1)[0]
    demo = ROOT / "examples" / "demo" / "offload_demo" / "origin_feeds.py"
    assert sample.strip() and sample in demo.read_text()
