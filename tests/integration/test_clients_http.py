"""Every client over real HTTP: CORS across the chain, HEAD on every GET route, digests.

The browser itself is driven in tests/e2e/test_page.py; here each hop is asked what a
browser asks it (preflights with and without `Origin: null`, reads with an `Origin`).
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import uuid
from http import HTTPStatus

import pytest
import requests

from tests.support import CORS_EXPOSED
from tests.support.clients import absent, client_environment
from tests.support.stack import RunningStack, wait_for_hit

PAGE_ORIGIN = "http://127.0.0.1:4490"
EXPOSED = CORS_EXPOSED


def repr_digest(data: bytes) -> str:
    return f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"


def listed(value: str | None) -> set[str]:
    return {part.strip().lower() for part in (value or "").split(",") if part.strip()}


@pytest.fixture(params=["api", "edge"])
def base(request: pytest.FixtureRequest, local_stack: RunningStack) -> str:
    """The API directly, and through the local edge (as CloudFront in front)."""
    if request.param == "api":
        return local_stack.base_url
    if local_stack.edge_url is None:
        absent("varnishd is not installed (.ci/run installs it: apt-get install varnish)")
    return local_stack.edge_url


@pytest.fixture
def feed_key(make_key) -> str:
    key, _ = make_key()
    return key


def stored_file(http: requests.Session, base: str, key: str) -> requests.Response:
    """The catalog generated, recorded, and answered with a 307 hit."""
    url = f"{base}/feeds/catalog.json"
    http.get(url, headers={"X-Api-Key": key}, allow_redirects=False, timeout=60)
    hit = wait_for_hit(http, url, key)
    assert hit.status_code == HTTPStatus.TEMPORARY_REDIRECT, hit.text
    return hit


def test_a_preflight_for_a_keyed_request_is_answered_by_the_gateway(http, base):
    response = http.options(
        f"{base}/feeds/catalog.json",
        headers={
            "Origin": PAGE_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-api-key, if-none-match",
        },
        timeout=30,
    )
    assert response.status_code == HTTPStatus.NO_CONTENT
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert {"x-api-key", "authorization", "if-none-match", "content-type", "range"} <= listed(
        response.headers["Access-Control-Allow-Headers"]
    )
    assert {"get", "head", "post"} <= listed(response.headers["Access-Control-Allow-Methods"])


def test_every_answer_errors_included_carries_cors_and_no_vary_origin(http, base, feed_key):
    user = f"cors-{uuid.uuid4().hex[:10]}"
    origin = {"Origin": PAGE_ORIGIN}
    answers = {
        "pointer": http.get(f"{base}/users/{user}/matches/version", headers=origin, timeout=30),
        "401": http.get(f"{base}/feeds/catalog.json", headers=origin, timeout=30),
        "403": http.get(
            f"{base}/feeds/catalog.json", headers={**origin, "X-Api-Key": "wrong"}, timeout=30
        ),
        "404": http.get(f"{base}/matches/m-none-{user}", headers=origin, timeout=30),
        "400": http.get(
            f"{base}/feeds/catalog.json?junk=1",
            headers={**origin, "X-Api-Key": feed_key},
            timeout=30,
        ),
    }
    for name, response in answers.items():
        assert response.headers.get("Access-Control-Allow-Origin") == "*", name
        assert listed(response.headers.get("Access-Control-Expose-Headers")) >= EXPOSED, name
        assert "origin" not in listed(response.headers.get("Vary")), name
    assert answers["403"].headers["Content-Type"] == "application/problem+json"


def test_a_cached_copy_made_without_origin_still_answers_a_page(http, base):
    # GIVEN a pointer first fetched by a client that sent no Origin (curl, a server)
    url = f"{base}/users/cors-{uuid.uuid4().hex[:10]}/matches/version"
    plain = http.get(url, timeout=30)
    assert "Access-Control-Allow-Origin" not in plain.headers
    # WHEN a page asks for it (the edge may answer from that copy)
    page = http.get(url, headers={"Origin": PAGE_ORIGIN}, timeout=30)
    # THEN it is readable cross-origin all the same
    assert page.headers["Access-Control-Allow-Origin"] == "*"
    assert page.content == plain.content


def test_the_bucket_answers_the_second_preflight_after_a_redirect(http, base, feed_key):
    location = stored_file(http, base, feed_key).headers["Location"]
    # A browser that followed a cross-origin 307 sends Origin: null, and a preflight of its
    # own because the request still carries X-Api-Key.
    preflight = http.options(
        location,
        headers={
            "Origin": "null",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-api-key,range",
        },
        timeout=30,
    )
    assert preflight.status_code == HTTPStatus.OK, preflight.text
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert listed(preflight.headers["Access-Control-Allow-Headers"]) == {"x-api-key", "range"}
    got = http.get(
        location, headers={"Origin": "null", "X-Api-Key": feed_key}, stream=True, timeout=30
    )
    assert got.status_code == HTTPStatus.OK
    assert got.headers["Access-Control-Allow-Origin"] == "*"
    assert "x-amz-meta-sha256" in listed(got.headers["Access-Control-Expose-Headers"])
    raw = got.raw.read(decode_content=False)
    assert f"sha-256=:{got.headers['x-amz-meta-sha256']}:" == repr_digest(raw)


def test_the_bucket_refuses_a_preflight_its_rules_do_not_allow(http, base, feed_key):
    location = stored_file(http, base, feed_key).headers["Location"]
    refused = http.options(
        location,
        headers={"Origin": PAGE_ORIGIN, "Access-Control-Request-Method": "DELETE"},
        timeout=30,
    )
    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert b"CORSResponse" in refused.content
    # and a read without Origin gets no CORS headers (moto's flask-cors echoed any origin)
    plain = http.get(location, timeout=30)
    assert "Access-Control-Allow-Origin" not in plain.headers


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_every_byte_matches_the_announced_digest(http, base, feed_key, gzip):
    stored_file(http, base, feed_key)
    headers = {"X-Api-Key": feed_key, "Accept-Encoding": "gzip" if gzip else "identity"}
    redirect = http.get(
        f"{base}/feeds/catalog.json", headers=headers, allow_redirects=False, timeout=30
    )
    assert redirect.status_code == HTTPStatus.TEMPORARY_REDIRECT
    file = http.get(redirect.headers["Location"], stream=True, timeout=30)
    raw = file.raw.read(decode_content=False)
    assert raw.startswith(b"\x1f\x8b") is gzip
    assert redirect.headers["Repr-Digest"] == repr_digest(raw)
    link = http.get(
        f"{base}/feeds/catalog.json?redirect=false", headers=headers, timeout=30
    ).json()
    linked = http.get(link["url"], stream=True, timeout=30).raw.read(decode_content=False)
    assert (link["digest"], link["size"], link["content_encoding"]) == (
        repr_digest(linked),
        len(linked),
        "gzip" if gzip else None,
    )


def test_head_of_a_feed_follows_to_the_file_s_metadata(http, base, feed_key):
    stored_file(http, base, feed_key)
    headers = {"X-Api-Key": feed_key, "Accept-Encoding": "identity"}
    url = f"{base}/feeds/catalog.json"
    hit = http.get(url, headers=headers, allow_redirects=False, timeout=30)
    file = http.get(hit.headers["Location"], headers={"Accept-Encoding": "identity"}, timeout=30)
    head = http.head(url, headers=headers, timeout=30)
    assert head.status_code == HTTPStatus.TEMPORARY_REDIRECT
    assert head.headers["Repr-Digest"] == repr_digest(file.content)
    assert "RateLimit-Remaining" in head.headers
    followed = http.head(head.headers["Location"], timeout=30)
    assert followed.status_code == HTTPStatus.OK
    assert int(followed.headers["Content-Length"]) == len(file.content)
    assert followed.headers["Content-Disposition"] == file.headers["Content-Disposition"]
    assert followed.headers["ETag"] == file.headers["ETag"]
    # Signed for HEAD: the URL does not serve the bytes, as S3's signature names the method
    assert http.get(head.headers["Location"], timeout=30).status_code == HTTPStatus.FORBIDDEN


def test_curl_head_follows_to_a_200_with_the_file_s_length(local_stack, http, feed_key):
    curl = shutil.which("curl")
    if curl is None:
        absent("curl is not installed")
    hit = stored_file(http, local_stack.base_url, feed_key)
    plain = http.get(hit.headers["Location"], headers={"Accept-Encoding": "identity"}, timeout=30)
    size = len(plain.content)
    done = subprocess.run(
        [curl, "-sSIL", "-H", f"X-Api-Key: {feed_key}", local_stack.url("/feeds/catalog.json")],
        capture_output=True,
        text=True,
        timeout=60,
        env=client_environment(),
        check=True,
    )
    last = done.stdout.replace("\r\n", "\n").strip().split("\n\n")[-1].lower()
    assert last.startswith("http/1.1 200")
    assert f"content-length: {size}" in last


def test_head_of_a_feed_nobody_generated_is_a_404_and_generates_nothing(http, base, feed_key):
    head = http.head(
        f"{base}/feeds/catalog.json?category=garden", headers={"X-Api-Key": feed_key}, timeout=30
    )
    assert head.status_code == HTTPStatus.NOT_FOUND
    get = http.get(
        f"{base}/feeds/catalog.json?category=garden",
        headers={"X-Api-Key": feed_key},
        allow_redirects=False,
        timeout=60,
    )
    assert get.headers["Cache-Status"].startswith("Offload; fwd=miss")


@pytest.mark.parametrize(
    "path", ["/users/{user}/matches/version", "/users/{user}/matches/index", "/matches/m-1001"]
)
def test_head_of_a_collection_is_its_get_without_the_body(http, base, path):
    url = base + path.format(user="42")
    get = http.get(url, allow_redirects=False, timeout=30)
    head = http.head(url, timeout=30)
    assert head.status_code == get.status_code
    assert head.content == b""
    for name in ("Content-Type", "Cache-Control", "ETag", "Location"):
        assert head.headers.get(name) == get.headers.get(name), name
    if get.status_code == HTTPStatus.OK and "Content-Encoding" not in get.headers:
        assert int(head.headers["Content-Length"]) == len(get.content)


def test_a_429_is_readable_by_a_page_with_its_retry_after(http, base, make_key):
    key, _ = make_key(hourly_limit=1)
    origin = {"Origin": PAGE_ORIGIN, "X-Api-Key": key}
    url = f"{base}/feeds/catalog.json?junk=1"  # a counted 400: the one request allowed
    assert http.get(url, headers=origin, timeout=30).status_code == HTTPStatus.BAD_REQUEST
    refused = http.get(url, headers=origin, timeout=30)
    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert refused.headers["Access-Control-Allow-Origin"] == "*"
    exposed = listed(refused.headers["Access-Control-Expose-Headers"])
    assert {"retry-after", "ratelimit-remaining"} <= exposed
    assert refused.json()["status"] == HTTPStatus.TOO_MANY_REQUESTS
