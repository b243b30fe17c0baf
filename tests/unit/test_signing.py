"""Signed URLs: SigV4 presigned S3 GETs by default, CloudFront canned policies when set."""

from __future__ import annotations

import base64
import json
import time
from http import HTTPStatus
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from offload.config import ConfigurationError, Settings
from offload.runtime import get_runtime
from offload.signing import CloudFrontMaterial, CloudFrontUrlSigner, S3UrlSigner, build_signer
from tests.support import BUCKET_NAME, reset_container_state, rsa_private_key
from tests.support.feeds import CloudFront


def test_s3_url_is_sigv4_for_the_exact_key_with_the_configured_expiry(runtime):
    signer = S3UrlSigner(runtime.s3, BUCKET_NAME, ttl=45)
    url = urlsplit(signer.sign("files/catalog/demo/abc/0001-aa.json"))
    query = parse_qs(url.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["45"]
    assert "X-Amz-Signature" in query
    assert unquote(url.path).endswith("/files/catalog/demo/abc/0001-aa.json")


def test_hit_location_carries_no_api_key(call_feed, make_key, probe, deliver_s3_events):
    key, _ = make_key()
    call_feed("/feeds/probe.json", key=key, query=f"key={key}")
    deliver_s3_events()
    response = call_feed("/feeds/probe.json", query=f"key={key}")
    assert response["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    location = response["headers"]["Location"]
    assert key not in location and "key=" not in urlsplit(location).query.replace("X-Amz-", "")
    assert parse_qs(urlsplit(location).query)["X-Amz-Expires"] == ["60"]


def assert_signed_by(private_key: rsa.RSAPrivateKey, url: str) -> None:
    """The URL carries a canned-policy signature by this key over its own resource and expiry."""
    query = parse_qs(urlsplit(url).query)
    policy = json.dumps(
        {
            "Statement": [
                {
                    "Resource": url.split("?")[0],
                    "Condition": {"DateLessThan": {"AWS:EpochTime": int(query["Expires"][0])}},
                }
            ]
        },
        separators=(",", ":"),
    ).encode()
    signature = base64.b64decode(
        query["Signature"][0].replace("-", "+").replace("_", "=").replace("~", "/")
    )
    # Raises InvalidSignature if the URL was not signed with this key over this policy.
    private_key.public_key().verify(signature, policy, padding.PKCS1v15(), hashes.SHA1())


def test_cloudfront_url_is_a_verifiable_canned_policy_signature():
    private_key, pem = rsa_private_key()
    material = CloudFrontMaterial(domain="https://d111.cloudfront.net/", private_key=pem)
    signer = CloudFrontUrlSigner("K2JCJMDEHXQW5F", lambda: material, ttl=60)
    before = time.time()
    url = signer.sign("files/catalog/demo/abc/0001-aa.json")
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.netloc == "d111.cloudfront.net"
    assert parts.path == "/files/catalog/demo/abc/0001-aa.json"
    assert query["Key-Pair-Id"] == ["K2JCJMDEHXQW5F"]
    assert before + 59 <= int(query["Expires"][0]) <= time.time() + 61
    assert_signed_by(private_key, url)


def test_hit_redirects_to_the_cdn_domain_read_from_ssm(
    cloudfront: CloudFront, call_feed, make_key, probe, deliver_s3_events
):
    # GIVEN a stack with a CDN key, and a file generated for a client
    key, client_id = make_key()
    call_feed("/feeds/probe.json", key=key)
    deliver_s3_events()
    # WHEN the client asks again
    response = call_feed("/feeds/probe.json", key=key)
    # THEN it is sent to the distribution's /files/ path with a URL signed by the stack's key
    assert response["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    location = response["headers"]["Location"]
    parts = urlsplit(location)
    assert parts.netloc == cloudfront.domain
    assert parts.path.startswith(f"/files/probe/{client_id}/")
    assert parse_qs(parts.query)["Key-Pair-Id"] == [cloudfront.key_id]
    assert key not in location
    assert_signed_by(cloudfront.private_key, location)


def test_key_and_domain_are_read_once_per_container(cloudfront: CloudFront):
    signer = get_runtime().signer
    first = signer.sign("files/a.json")
    # Once read, SSM is not asked again: the container keeps signing without it.
    ssm = boto3.client("ssm")
    ssm.delete_parameters(Names=[cloudfront.key_parameter, cloudfront.domain_parameter])
    assert urlsplit(signer.sign("files/b.json")).netloc == urlsplit(first).netloc


def test_a_literal_domain_is_used_instead_of_the_parameter(
    cloudfront: CloudFront, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN a custom domain set literally, and no domain parameter to read
    boto3.client("ssm").delete_parameter(Name=cloudfront.domain_parameter)
    monkeypatch.setenv("CLOUDFRONT_DOMAIN", "files.example.com")
    reset_container_state()
    # THEN URLs point at it
    url = get_runtime().signer.sign("files/a.json")
    assert urlsplit(url).netloc == "files.example.com"
    assert_signed_by(cloudfront.private_key, url)


def test_a_missing_parameter_is_a_configuration_error(cloudfront: CloudFront):
    boto3.client("ssm").delete_parameter(Name=cloudfront.key_parameter)
    with pytest.raises(ConfigurationError, match=cloudfront.key_parameter):
        get_runtime().signer.sign("files/a.json")


@pytest.mark.parametrize(
    "cloudfront_settings",
    [
        {"cloudfront_key_id": "K2JCJMDEHXQW5F"},
        {"cloudfront_key_id": "K2JCJMDEHXQW5F", "cloudfront_private_key_parameter": "/o/key"},
        {"cloudfront_private_key_parameter": "/o/key", "cloudfront_domain_parameter": "/o/cdn"},
        {"cloudfront_domain_parameter": "/o/cdn"},
        {"cloudfront_domain": "cdn.example.com"},
    ],
)
def test_settings_need_key_id_private_key_and_a_domain_source_together(cloudfront_settings):
    with pytest.raises(ConfigurationError, match="together"):
        Settings(table_name="t", bucket_name="b", **cloudfront_settings)


@pytest.mark.parametrize(
    "domain_source",
    [{"cloudfront_domain_parameter": "/o/cdn"}, {"cloudfront_domain": "cdn.example.com"}],
)
def test_cloudfront_is_chosen_when_configured(runtime, domain_source):
    settings = Settings(
        table_name="t",
        bucket_name="b",
        cloudfront_key_id="K2JCJMDEHXQW5F",
        cloudfront_private_key_parameter="/offload/cloudfront-key",
        **domain_source,
    )
    assert isinstance(build_signer(settings, runtime.s3, "b"), CloudFrontUrlSigner)
    assert isinstance(build_signer(runtime.settings, runtime.s3, "b"), S3UrlSigner)
