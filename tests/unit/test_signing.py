"""Signed URLs: SigV4 presigned S3 GETs by default, CloudFront canned policies when set."""

from __future__ import annotations

import base64
import json
import time
from http import HTTPStatus
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from offload.config import Settings
from offload.signing import CloudFrontUrlSigner, S3UrlSigner, build_signer
from tests.support import BUCKET_NAME


def test_s3_url_is_sigv4_for_the_exact_key_with_the_configured_expiry(runtime):
    signer = S3UrlSigner(runtime.s3, BUCKET_NAME, ttl=45)
    url = urlsplit(signer.sign("feeds/catalog/demo/abc/0001-aa.json"))
    query = parse_qs(url.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["45"]
    assert "X-Amz-Signature" in query
    assert unquote(url.path).endswith("/feeds/catalog/demo/abc/0001-aa.json")


def test_hit_location_carries_no_api_key(call_feed, make_key, probe, deliver_s3_events):
    key, _ = make_key()
    call_feed("/feeds/probe.json", key=key, query=f"key={key}")
    deliver_s3_events()
    response = call_feed("/feeds/probe.json", query=f"key={key}")
    assert response["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    location = response["headers"]["Location"]
    assert key not in location and "key=" not in urlsplit(location).query.replace("X-Amz-", "")
    assert parse_qs(urlsplit(location).query)["X-Amz-Expires"] == ["60"]


def test_cloudfront_url_is_a_verifiable_canned_policy_signature():
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    signer = CloudFrontUrlSigner("d111.cloudfront.net", "K2JCJMDEHXQW5F", lambda: pem, ttl=60)
    before = time.time()
    url = signer.sign("feeds/catalog/demo/abc/0001-aa.json")
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.netloc == "d111.cloudfront.net"
    assert parts.path == "/feeds/catalog/demo/abc/0001-aa.json"
    assert query["Key-Pair-Id"] == ["K2JCJMDEHXQW5F"]
    expires = int(query["Expires"][0])
    assert before + 59 <= expires <= time.time() + 61
    resource = url.split("?")[0]
    policy = json.dumps(
        {
            "Statement": [
                {"Resource": resource, "Condition": {"DateLessThan": {"AWS:EpochTime": expires}}}
            ]
        },
        separators=(",", ":"),
    ).encode()
    signature = base64.b64decode(
        query["Signature"][0].replace("-", "+").replace("_", "=").replace("~", "/")
    )
    # Raises InvalidSignature if the URL was not signed with this key over this policy.
    private_key.public_key().verify(signature, policy, padding.PKCS1v15(), hashes.SHA1())


def test_cloudfront_is_chosen_when_configured(runtime):
    settings = Settings(
        table_name="t",
        bucket_name="b",
        cloudfront_domain="d111.cloudfront.net",
        cloudfront_key_id="K2JCJMDEHXQW5F",
        cloudfront_private_key_parameter="/offload/cloudfront-key",
    )
    assert isinstance(build_signer(settings, runtime.s3), CloudFrontUrlSigner)
    assert isinstance(build_signer(runtime.settings, runtime.s3), S3UrlSigner)
