"""The emulator's presigned-URL check: S3's verdicts, on URLs botocore signs, without a socket."""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import boto3
import pytest
from botocore.config import Config
from botocore.credentials import ReadOnlyCredentials
from werkzeug.test import EnvironBuilder, run_wsgi_app

from offload_local.presigned import ONE_AUTH_MECHANISM, SIGNATURE_MISMATCH, PresignedUrls

REGION = "eu-west-1"
ENDPOINT = "http://127.0.0.1:4566"
CREDENTIALS = ReadOnlyCredentials("local", "local", None)
SDK_AUTHORIZATION = (
    f"AWS4-HMAC-SHA256 Credential=local/20260101/{REGION}/s3/aws4_request, "
    "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" + "0" * 64
)
ODD_KEY = "files/a b+c/é~!'()*&=;,$@.json"


@dataclass
class Emulator:
    """Stands in for moto: records what reached it and answers 200."""

    reached: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.reached.append(environ)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"the bytes"]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, str]:
        """S3's XML error document, element by element."""
        assert self.headers["Content-Type"] == "application/xml"
        return {element.tag: element.text or "" for element in ElementTree.fromstring(self.body)}


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


def s3(credentials: ReadOnlyCredentials | None = CREDENTIALS) -> Any:
    keys = {}
    if credentials is not None:
        keys = {
            "aws_access_key_id": credentials.access_key,
            "aws_secret_access_key": credentials.secret_key,
            "aws_session_token": credentials.token,
        }
    # A session of its own: boto3's default one keeps the credentials it first found.
    return boto3.session.Session().client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        config=Config(signature_version="s3v4"),
        **keys,
    )


def presign(
    key: str = "files/catalog/demo/abc/0001-aa.json",
    *,
    method: str = "get_object",
    expires: int = 60,
    client: Any = None,
    **params: str,
) -> str:
    return (client or s3()).generate_presigned_url(
        method, Params={"Bucket": "feeds", "Key": key, **params}, ExpiresIn=expires
    )


def request(
    app: Any, url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> Answer:
    """`url` sent as a client sends it: the request target byte for byte, Host from the URL."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    environ = EnvironBuilder(
        method=method, base_url=f"{parts.scheme}://{parts.netloc}", headers=headers
    ).get_environ()
    # As werkzeug's server fills them in from the request line.
    environ.update(RAW_URI=target, REQUEST_URI=target, QUERY_STRING=parts.query)
    body, status, answer_headers = run_wsgi_app(app, environ, buffered=True)
    return Answer(int(status.split()[0]), dict(answer_headers), b"".join(body))


def checked(emulator: Emulator, now: float | None = None, credentials: Any = CREDENTIALS) -> Any:
    clock = time.time if now is None else (lambda: now)
    return PresignedUrls(emulator, region=REGION, credentials=lambda: credentials, clock=clock)


def signed_at(url: str) -> float:
    stamp = parse_qs(urlsplit(url).query)["X-Amz-Date"][0]
    return calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))


@pytest.mark.parametrize(
    ("key", "params"),
    [
        ("files/catalog/demo/abc/0001-aa.json", {}),
        (ODD_KEY, {}),
        (
            "files/catalog/demo/abc/0001-aa.json",
            {
                "ResponseContentDisposition": 'attachment; filename="catalog 2026.json"',
                "ResponseContentType": "application/json; charset=utf-8",
            },
        ),
    ],
    ids=["plain", "odd-key", "response-overrides"],
)
def test_a_presigned_get_reaches_the_emulator(emulator, key, params):
    url = presign(key, **params)
    answer = request(checked(emulator), url)
    assert answer.status == HTTPStatus.OK
    assert answer.body == b"the bytes"
    assert len(emulator.reached) == 1


def test_an_equivalent_encoding_of_the_same_url_verifies_as_in_s3(emulator):
    # GIVEN a URL for an odd key, re-encoded as some clients do (S3 decodes before checking)
    url = presign(ODD_KEY)
    assert "~" in url and "%C3%A9" in url and "%2F" in url
    reencoded = url.replace("~", "%7E").replace("%C3%A9", "%c3%a9").replace("%2F", "/")

    # THEN it is the same request
    assert request(checked(emulator), reencoded).status == HTTPStatus.OK


def test_a_presigned_head_url_answers_a_head(emulator):
    url = presign(method="head_object")
    assert request(checked(emulator), url, "HEAD").status == HTTPStatus.OK


def _flip(character: str) -> str:
    return "0" if character != "0" else "1"


TAMPERINGS = {
    "signature": lambda url: url[:-1] + _flip(url[-1]),
    "key": lambda url: url.replace("0001-aa.json", "0001-ab.json"),
    "expires": lambda url: url.replace("X-Amz-Expires=60", "X-Amz-Expires=3600"),
    "date": lambda url: re.sub(r"(X-Amz-Date=\d{8}T\d{5})(\d)", lambda m: m[1] + _flip(m[2]), url),
    "added-parameter": lambda url: url + "&response-content-type=text%2Fhtml",
    "host": lambda url: url.replace(":4566/", ":4567/"),
}


@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_a_tampered_url_does_not_match_its_signature(emulator, tamper):
    url = presign()
    answer = request(checked(emulator), tamper(url))
    assert answer.status == HTTPStatus.FORBIDDEN
    error = answer.error()
    assert (error["Code"], error["Message"]) == ("SignatureDoesNotMatch", SIGNATURE_MISMATCH)
    assert error["AWSAccessKeyId"] == "local"
    assert error["CanonicalRequest"].startswith("GET\n/feeds/files/")
    assert not emulator.reached


def test_a_get_url_does_not_sign_a_head(emulator):
    answer = request(checked(emulator), presign(), "HEAD")
    assert answer.status == HTTPStatus.FORBIDDEN
    assert answer.body == b""  # S3 answers a HEAD with the status alone
    assert not emulator.reached


def test_a_url_expires_after_its_seconds(emulator):
    url = presign(expires=60)
    at = signed_at(url)
    assert request(checked(emulator, now=at + 60), url).status == HTTPStatus.OK

    answer = request(checked(emulator, now=at + 61), url)

    assert answer.status == HTTPStatus.FORBIDDEN
    error = answer.error()
    assert (error["Code"], error["Message"]) == ("AccessDenied", "Request has expired")
    assert error["X-Amz-Expires"] == "60"
    assert error["Expires"] < error["ServerTime"]
    assert len(emulator.reached) == 1


def test_an_authorization_header_beside_a_query_signature_is_refused(emulator):
    answer = request(
        checked(emulator), presign(), headers={"Authorization": "Bearer demo-feeds-key"}
    )
    assert answer.status == HTTPStatus.BAD_REQUEST
    error = answer.error()
    assert (error["Code"], error["Message"]) == ("InvalidArgument", ONE_AUTH_MECHANISM)
    assert error["ArgumentName"] == "Authorization"
    assert {"RequestId", "HostId"} <= error.keys()
    assert answer.headers["x-amz-request-id"] == error["RequestId"]
    assert not emulator.reached


def test_an_unsigned_amz_header_is_refused(emulator):
    answer = request(checked(emulator), presign(), headers={"x-amz-meta-extra": "1"})
    assert answer.status == HTTPStatus.FORBIDDEN
    assert answer.error()["HeadersNotSigned"] == "x-amz-meta-extra"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        (lambda u: re.sub(r"&X-Amz-Date=[^&]*", "", u), 400, "AuthorizationQueryParametersError"),
        (
            lambda u: u.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"),
            400,
            "AuthorizationQueryParametersError",
        ),
        (
            lambda u: u.replace("X-Amz-Expires=60", "X-Amz-Expires=604801"),
            400,
            "AuthorizationQueryParametersError",
        ),
        (
            lambda u: u.replace("X-Amz-Expires=60", "X-Amz-Expires=soon"),
            400,
            "AuthorizationQueryParametersError",
        ),
        (lambda u: u.replace(REGION, "us-east-1"), 400, "AuthorizationQueryParametersError"),
        (lambda u: u.replace("%2Fs3%2F", "%2Fsqs%2F"), 400, "AuthorizationQueryParametersError"),
        (
            lambda u: u.replace("Credential=local", "Credential=AKIAOTHER"),
            403,
            "InvalidAccessKeyId",
        ),
    ],
    ids=[
        "no-date",
        "algorithm",
        "over-a-week",
        "expires-not-a-number",
        "region",
        "service",
        "unknown-key",
    ],
)
def test_malformed_or_foreign_auth_parameters_are_refused(emulator, change, status, code):
    answer = request(checked(emulator), change(presign()))
    assert answer.status == status
    assert answer.error()["Code"] == code
    assert not emulator.reached


def test_the_stack_environment_credentials_sign_and_their_token_is_checked(emulator):
    # GIVEN the check using the process environment's credentials (tests set a session token)
    app = PresignedUrls(emulator, region=REGION)
    url = presign(client=s3(credentials=None))
    assert "X-Amz-Security-Token=testing" in url

    # THEN a URL they signed verifies, and one with another token does not
    assert request(app, url).status == HTTPStatus.OK
    other = request(app, url.replace("X-Amz-Security-Token=testing", "X-Amz-Security-Token=x"))
    assert other.status == HTTPStatus.BAD_REQUEST
    assert other.error()["Code"] == "InvalidToken"


@pytest.mark.parametrize(
    ("method", "url", "headers"),
    [
        # The SDKs' own calls: signed in the Authorization header, never in the query.
        (
            "GET",
            f"{ENDPOINT}/feeds/files/x.json",
            {"Authorization": SDK_AUTHORIZATION},
        ),
        (
            "PUT",
            f"{ENDPOINT}/feeds/files/x.json?x-id=PutObject",
            {"Authorization": SDK_AUTHORIZATION},
        ),
        ("GET", f"{ENDPOINT}/feeds/files/x.json", {}),
        ("GET", f"{ENDPOINT}/feeds?list-type=2&prefix=files%2F", {}),
        # A CORS preflight, which S3 answers without a signature.
        ("OPTIONS", f"{ENDPOINT}/feeds/files/x.json", {"Origin": "null"}),
    ],
    ids=["sdk-get", "sdk-put", "unsigned", "unsigned-list", "preflight"],
)
def test_other_requests_reach_the_emulator_untouched(emulator, method, url, headers):
    answer = request(checked(emulator, now=time.time() + 3600), url, method, headers)
    assert answer.status == HTTPStatus.OK
    assert len(emulator.reached) == 1


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST", "PATCH"])
def test_a_get_url_sent_with_another_method_does_not_match_its_signature(emulator, method):
    # GIVEN a URL signed for a GET (a feed's Location)
    # WHEN its holder sends it with a method that would write or delete
    answer = request(checked(emulator), presign(), method)

    # THEN S3's verdict: the method is part of what was signed
    assert answer.status == HTTPStatus.FORBIDDEN
    error = answer.error()
    assert (error["Code"], error["Message"]) == ("SignatureDoesNotMatch", SIGNATURE_MISMATCH)
    assert error["CanonicalRequest"].startswith(f"{method}\n/feeds/files/")
    assert not emulator.reached


def test_a_put_url_signs_a_put_and_only_a_put(emulator):
    url = presign(method="put_object")
    assert request(checked(emulator), url, "PUT").status == HTTPStatus.OK
    assert request(checked(emulator), url, "GET").status == HTTPStatus.FORBIDDEN
    assert len(emulator.reached) == 1


def test_a_presigned_put_expires_as_a_get_does(emulator):
    url = presign(method="put_object", expires=1)
    answer = request(checked(emulator, now=signed_at(url) + 2), url, "PUT")
    assert answer.status == HTTPStatus.FORBIDDEN
    assert answer.error()["Message"] == "Request has expired"
    assert not emulator.reached


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST"])
def test_an_unsigned_write_is_refused_as_anonymous(emulator, method):
    answer = request(checked(emulator), f"{ENDPOINT}/feeds/files/x.json", method)
    assert answer.status == HTTPStatus.FORBIDDEN
    assert (answer.error()["Code"], answer.error()["Message"]) == ("AccessDenied", "Access Denied")
    assert not emulator.reached
