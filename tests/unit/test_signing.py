"""Signed URLs: SigV4 presigned S3 GETs by default, CloudFront canned policies when set."""

from __future__ import annotations

import json
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.retries.standard import ExponentialBackoff
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from moto.core.botocore_stubber import MockRawResponse

from offload.config import ConfigurationError, Settings
from offload.runtime import SSM_ATTEMPTS, get_runtime
from offload.signing import (
    RECHECK_SECONDS,
    CloudFrontMaterial,
    CloudFrontUrlSigner,
    S3UrlSigner,
    build_signer,
    load_cloudfront_material,
)
from tests.support import BUCKET_NAME, reset_container_state, rsa_private_key
from tests.support.feeds import CloudFront, canned_policy


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
    policy, signature = canned_policy(url)
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
    ssm = lambda: runtime.ssm  # noqa: E731
    assert isinstance(build_signer(settings, runtime.s3, "b", ssm), CloudFrontUrlSigner)
    assert isinstance(build_signer(runtime.settings, runtime.s3, "b", ssm), S3UrlSigner)


class ThrottledSsm:
    """The container's next `times` GetParameters calls are throttled, as SSM answers past its
    shared 40 a second; `calls` logs each attempt."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.calls: list[str] = []
        get_runtime().ssm.meta.events.register_first("before-send.ssm.GetParameters", self)

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        self.calls.append("throttled" if len(self.calls) < self.times else "answered")
        if self.calls[-1] == "answered":
            return None  # moto answers
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"})
        headers = {"Content-Type": "application/x-amz-json-1.1"}
        return AWSResponse(request.url, 400, headers, MockRawResponse(body.encode()))


@pytest.fixture
def throttled_ssm(monkeypatch: pytest.MonkeyPatch) -> type[ThrottledSsm]:
    """Makes ThrottledSsm; botocore's backoff takes no time meanwhile."""
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)
    return ThrottledSsm


def test_a_throttled_key_read_is_retried_with_backoff(cloudfront: CloudFront, throttled_ssm):
    ssm = throttled_ssm(2)
    url = get_runtime().signer.sign("files/a.json")
    assert urlsplit(url).netloc == cloudfront.domain
    assert ssm.calls == ["throttled", "throttled", "answered"]


def test_a_key_read_still_throttled_is_a_503_with_retry_after(
    cloudfront: CloudFront, throttled_ssm, call_feed, make_key, probe, deliver_s3_events
):
    # GIVEN a stored file, and SSM throttling every attempt the container makes
    key, _ = make_key()
    call_feed("/feeds/probe.json", key=key)
    deliver_s3_events()
    ssm = throttled_ssm(99)
    # WHEN the file is asked for
    response = call_feed("/feeds/probe.json", key=key)
    # THEN the client is told to come back, as for any dependency that failed
    assert response["statusCode"] == HTTPStatus.SERVICE_UNAVAILABLE
    assert int(response["headers"]["Retry-After"]) > 0
    assert response["headers"]["Content-Type"] == "application/problem+json"
    assert len(ssm.calls) == SSM_ATTEMPTS
    # AND the next request, once SSM answers, signs: a failed read is not kept
    ssm.times = 0
    after = call_feed("/feeds/probe.json", key=key)
    assert after["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    assert urlsplit(after["headers"]["Location"]).netloc == cloudfront.domain


def test_files_stay_s3_presigned_until_the_stack_publishes_the_cdn_domain(
    cloudfront: CloudFront,
    monkeypatch: pytest.MonkeyPatch,
    call_feed,
    make_key,
    probe,
    deliver_s3_events,
):
    # GIVEN a stack update that turned signing on, still updating the distribution: the
    # domain parameter is written only once the distribution serves /files/
    ssm = boto3.client("ssm")
    ssm.delete_parameter(Name=cloudfront.domain_parameter)
    monkeypatch.setattr("offload.signing.RECHECK_SECONDS", 0.0)  # see the next test
    key, _ = make_key()
    call_feed("/feeds/probe.json", key=key)
    deliver_s3_events()
    # WHEN a client asks, THEN its link is the bucket's own
    before = call_feed("/feeds/probe.json", key=key)["headers"]["Location"]
    assert "X-Amz-Signature" in before and cloudfront.domain not in before
    # WHEN the update has finished and the container looks again
    ssm.put_parameter(Name=cloudfront.domain_parameter, Value=cloudfront.domain, Type="String")
    after = call_feed("/feeds/probe.json", key=key)["headers"]["Location"]
    # THEN links go through the distribution, signed by the stack's key
    assert urlsplit(after).netloc == cloudfront.domain
    assert_signed_by(cloudfront.private_key, after)


def test_a_missing_domain_is_looked_for_again_only_after_a_while(cloudfront: CloudFront):
    boto3.client("ssm").delete_parameter(Name=cloudfront.domain_parameter)
    now = [1000.0]
    runtime = get_runtime()
    reads: list[int] = []

    def load() -> CloudFrontMaterial | None:
        reads.append(1)
        return load_cloudfront_material(runtime.settings, runtime.ssm)

    signer = CloudFrontUrlSigner(
        cloudfront.key_id, load, 60, S3UrlSigner(runtime.s3, BUCKET_NAME, 60), lambda: now[0]
    )
    for _ in range(5):
        assert "X-Amz-Signature" in signer.sign("files/a.json")
    assert len(reads) == 1  # SSM's shared throughput is not spent on every request
    now[0] += RECHECK_SECONDS
    signer.sign("files/a.json")
    assert len(reads) == 2
