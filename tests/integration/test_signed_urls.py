"""The local stack checks the storage URLs it signs as S3 does: signature, expiry, one auth.

Also what real clients do with the API key when they follow the 307 to the storage URL, which
is on the same host (127.0.0.1) as the API but another port, as it is another host in AWS.
"""

from __future__ import annotations

import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree

import boto3
import httpx
import pytest
import requests
from botocore.config import Config

from offload_local.presigned import ONE_AUTH_MECHANISM, SIGNATURE_MISMATCH
from tests.support import BUCKET_NAME
from tests.support.clients import client_environment, require
from tests.support.stack import RunningStack, create_stack_key, wait_for_hit


@dataclass(frozen=True)
class Served:
    """A feed whose file is in the bucket: its URL, the key to ask with, the file's bytes."""

    url: str
    key: str
    body: bytes


@pytest.fixture(scope="module")
def served(local_stack: RunningStack) -> Served:
    key, _ = create_stack_key(local_stack)
    url = local_stack.url("/feeds/catalog.json?category=cameras")
    with requests.Session() as session:
        session.trust_env = False
        miss = session.get(url, headers={"X-Api-Key": key}, allow_redirects=False, timeout=30)
        assert miss.status_code == HTTPStatus.OK
        hit = wait_for_hit(session, url, key)
    assert hit.status_code == HTTPStatus.TEMPORARY_REDIRECT, hit.headers
    return Served(url, key, miss.content)


@pytest.fixture
def location(http: requests.Session, served: Served) -> str:
    """A freshly signed storage URL for the served file (they live for a minute)."""
    return wait_for_hit(http, served.url, served.key).headers["Location"]


def s3_error(response: requests.Response | httpx.Response) -> tuple[str, str]:
    """The code and message of S3's XML error document."""
    assert response.headers["Content-Type"] == "application/xml"
    error = ElementTree.fromstring(response.content)
    return error.findtext("Code") or "", error.findtext("Message") or ""


def presign(stack: RunningStack, object_key: str, expires: int) -> str:
    """A URL signed by hand, with the stack's credentials, as any AWS tool would sign it."""
    environment = stack.environment
    s3 = boto3.client(
        "s3",
        endpoint_url=stack.endpoint_url,
        region_name=environment["AWS_REGION"],
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        config=Config(signature_version="s3v4"),
    )
    return s3.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET_NAME, "Key": object_key}, ExpiresIn=expires
    )


def object_key(location: str) -> str:
    return unquote(urlsplit(location).path).removeprefix(f"/{BUCKET_NAME}/")


def test_the_signed_url_downloads_the_file(http, served, location):
    download = http.get(location, timeout=30)
    assert download.status_code == HTTPStatus.OK
    assert download.content == served.body


def _other_signature(url: str) -> str:
    return url[:-1] + ("0" if url[-1] != "0" else "1")


TAMPERINGS: dict[str, Callable[[str], str]] = {
    "one-character-of-the-signature": _other_signature,
    "the-key-path": lambda url: url.replace(".json", ".xml", 1),
    "the-expiry": lambda url: re.sub(r"X-Amz-Expires=\d+", "X-Amz-Expires=3600", url),
    "an-added-parameter": lambda url: url + "&response-content-type=text%2Fhtml",
}


@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_a_tampered_url_is_refused_as_s3_refuses_it(http, location, tamper):
    tampered = tamper(location)
    assert tampered != location
    answer = http.get(tampered, timeout=30)
    assert answer.status_code == HTTPStatus.FORBIDDEN
    assert s3_error(answer) == ("SignatureDoesNotMatch", SIGNATURE_MISMATCH)


def test_an_expired_url_is_refused(http, local_stack, location):
    # GIVEN URLs for the file signed by hand: one for a minute, one for a second
    lasting = presign(local_stack, object_key(location), expires=60)
    brief = presign(local_stack, object_key(location), expires=1)
    assert http.get(lasting, timeout=30).status_code == HTTPStatus.OK

    # WHEN the second has passed
    time.sleep(2.1)
    answer = http.get(brief, timeout=30)

    # THEN it is refused as S3 refuses it
    assert answer.status_code == HTTPStatus.FORBIDDEN
    assert s3_error(answer) == ("AccessDenied", "Request has expired")
    assert ElementTree.fromstring(answer.content).findtext("X-Amz-Expires") == "1"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST"])
def test_a_download_url_never_writes_or_deletes_the_file(http, served, location, method):
    # WHEN the holder of a feed's Location sends it with a method that would change the file
    answer = http.request(method, location, data=b'{"evil": true}', timeout=30)

    # THEN S3's answer: the method is signed; and the file is what the feed generated
    assert answer.status_code == HTTPStatus.FORBIDDEN
    assert s3_error(answer) == ("SignatureDoesNotMatch", SIGNATURE_MISMATCH)
    assert http.get(location, timeout=30).content == served.body


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST"])
def test_an_unsigned_write_to_the_bucket_is_refused(http, local_stack, served, location, method):
    plain = f"{local_stack.endpoint_url}/{BUCKET_NAME}/{object_key(location)}"
    answer = http.request(method, plain, data=b'{"evil": true}', timeout=30)
    assert answer.status_code == HTTPStatus.FORBIDDEN
    assert s3_error(answer) == ("AccessDenied", "Access Denied")
    assert http.get(location, timeout=30).content == served.body


def test_the_sdks_own_calls_signed_in_the_header_pass(stack_aws, location):
    s3 = boto3.client("s3")
    key = object_key(location).removesuffix(".gz")  # the plain file, not its gzip copy
    assert s3.head_object(Bucket=BUCKET_NAME, Key=key)["ContentLength"] > 0
    assert s3.get_object(Bucket=BUCKET_NAME, Key=key)["Body"].read(1) == b"{"


def test_an_api_key_sent_along_to_the_signed_url_is_refused(http, location):
    answer = http.get(location, headers={"Authorization": "Bearer demo-feeds-key"}, timeout=30)
    assert answer.status_code == HTTPStatus.BAD_REQUEST
    assert s3_error(answer) == ("InvalidArgument", ONE_AUTH_MECHANISM)


def _requests(url: str, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    with requests.Session() as session:
        session.trust_env = False
        response = session.get(url, headers=headers, timeout=30)
        assert [r.status_code for r in response.history] == [HTTPStatus.TEMPORARY_REDIRECT]
        return response.status_code, response.content, dict(response.request.headers)


def _httpx(url: str, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    with httpx.Client(follow_redirects=True, trust_env=False, timeout=30) as client:
        response = client.get(url, headers=headers)
        assert [r.status_code for r in response.history] == [HTTPStatus.TEMPORARY_REDIRECT]
        return response.status_code, response.content, dict(response.request.headers)


def _urllib(url: str, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=30) as response:
            return response.status, response.read(), {}
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read(), {}


# Whether each client, following the 307, sends `Authorization` on to the storage URL (same
# host, another port here; another host in AWS): requests and httpx drop it; urllib keeps it.
FOLLOWERS: dict[str, tuple[Callable[..., tuple[int, bytes, dict[str, str]]], bool]] = {
    "requests": (_requests, False),
    "httpx": (_httpx, False),
    "urllib": (_urllib, True),
}


@pytest.mark.parametrize(("follow", "forwards"), FOLLOWERS.values(), ids=FOLLOWERS.keys())
def test_python_clients_following_the_redirect_with_a_bearer_key(served, follow, forwards):
    status, body, sent = follow(served.url, {"Authorization": f"Bearer {served.key}"})
    if forwards:
        assert status == HTTPStatus.BAD_REQUEST
        assert b"<Code>InvalidArgument</Code>" in body
    else:
        assert status == HTTPStatus.OK
        assert body == served.body
        assert "authorization" not in {name.lower() for name in sent}


@pytest.mark.parametrize("follow", [_requests, _httpx], ids=["requests", "httpx"])
def test_an_x_api_key_goes_along_to_the_storage_url_where_it_is_ignored(served, follow):
    status, body, sent = follow(served.url, {"X-Api-Key": served.key})
    assert status == HTTPStatus.OK
    assert body == served.body
    assert {name.lower(): value for name, value in sent.items()}["x-api-key"] == served.key


def _curl(*arguments: str, output: Path) -> tuple[str, str, str]:
    """curl's status, redirect count and verbose trace (the headers it sent, `> ...`)."""
    result = subprocess.run(
        [
            require("curl"),
            "--silent",
            "--show-error",
            "--verbose",
            "--output",
            str(output),
            "--write-out",
            "%{http_code} %{num_redirects}",
            *arguments,
        ],
        env=client_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    status, redirects = result.stdout.split()
    return status, redirects, result.stderr


def _sent(trace: str, header: str) -> int:
    """How many of curl's requests carried the header."""
    return len(re.findall(rf"^> {header}:", trace, flags=re.MULTILINE | re.IGNORECASE))


def test_curl_follows_without_the_bearer_key_unless_told_to_trust_the_location(
    served: Served, tmp_path: Path
):
    bearer = ("--header", f"Authorization: Bearer {served.key}")

    # curl -L drops Authorization on a redirect to another port (7.83+) or host
    status, redirects, trace = _curl("--location", *bearer, served.url, output=tmp_path / "a")
    assert (status, redirects) == ("200", "1")
    assert (tmp_path / "a").read_bytes() == served.body
    assert _sent(trace, "Authorization") == 1

    # --location-trusted sends it on, and the storage URL refuses, as S3 would
    status, redirects, trace = _curl(
        "--location-trusted", *bearer, served.url, output=tmp_path / "b"
    )
    assert (status, redirects) == ("400", "1")
    assert b"<Code>InvalidArgument</Code>" in (tmp_path / "b").read_bytes()
    assert _sent(trace, "Authorization") == 2


def test_curl_sends_an_x_api_key_along_to_the_storage_url(served: Served, tmp_path: Path):
    status, redirects, trace = _curl(
        "--location", "--header", f"X-Api-Key: {served.key}", served.url, output=tmp_path / "a"
    )
    assert (status, redirects) == ("200", "1")
    assert (tmp_path / "a").read_bytes() == served.body
    assert _sent(trace, "X-Api-Key") == 2
