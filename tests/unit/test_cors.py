"""CORS across the chain, as the template declares it and the local stack applies it."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

import pytest

from offload_local.cors import ApiCors, BucketCors, CorsRule
from offload_local.template import ROOT, Stack, load
from tests.support import CORS_EXPOSED

# What a page must be able to send, and read, on every hop.
REQUEST_HEADERS = {"x-api-key", "authorization", "if-none-match", "content-type", "range"}
RESPONSE_HEADERS = CORS_EXPOSED
SIGNING = {
    "CdnPublicKey": "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
    "CloudFrontPrivateKeyParameter": "/offload-test/cf-key",
}


def properties(stack: Stack, logical_id: str) -> dict[str, Any]:
    return stack.resolve(stack.template["Resources"][logical_id]["Properties"])


def lowered(items: list[str]) -> set[str]:
    return {item.lower() for item in items}


def test_the_api_allows_any_origin_by_default_and_no_credentials():
    cors = Stack(load()).api_cors()
    assert cors is not None
    assert cors["AllowOrigins"] == ["*"]
    assert lowered(cors["AllowHeaders"]) >= REQUEST_HEADERS
    assert lowered(cors["ExposeHeaders"]) >= RESPONSE_HEADERS
    assert "AllowCredentials" not in cors


def test_restricted_origins_are_a_parameter():
    cors = Stack(load(), parameters={"CorsAllowedOrigins": "https://a.example,https://b.example"})
    assert cors.api_cors()["AllowOrigins"] == ["https://a.example", "https://b.example"]


def test_every_cloudfront_behaviour_sets_the_cors_headers_and_passes_preflights():
    stack = Stack(load(), parameters=SIGNING)
    config = properties(stack, "Distribution")["DistributionConfig"]
    behaviours = [config["DefaultCacheBehavior"], *config["CacheBehaviors"]]
    assert any(behaviour.get("PathPattern") == "/files/*" for behaviour in behaviours)
    for behaviour in behaviours:
        files = behaviour.get("PathPattern") == "/files/*"
        expected = "FilesCorsHeadersPolicy" if files else "CorsHeadersPolicy"
        assert behaviour["ResponseHeadersPolicyId"] == stack.resource_name(expected)
        assert "OPTIONS" in behaviour["AllowedMethods"]
    policy = properties(stack, "CorsHeadersPolicy")["ResponseHeadersPolicyConfig"]["CorsConfig"]
    assert policy["OriginOverride"] is True
    assert policy["AccessControlAllowCredentials"] is False
    assert policy["AccessControlAllowOrigins"]["Items"] == ["*"]
    assert lowered(policy["AccessControlExposeHeaders"]["Items"]) >= RESPONSE_HEADERS


def test_files_stay_readable_from_any_origin_when_the_api_restricts_them():
    stack = Stack(load(), parameters={**SIGNING, "CorsAllowedOrigins": "https://a.example"})
    policy = properties(stack, "FilesCorsHeadersPolicy")["ResponseHeadersPolicyConfig"]
    # After a redirect the browser's Origin is "null": only "*" lets it read the file
    assert policy["CorsConfig"]["AccessControlAllowOrigins"]["Items"] == ["*"]
    [rule] = bucket_rules()
    assert rule.matches("null", "GET", ["x-api-key", "range"])


def test_the_local_edge_sets_what_the_cloudfront_policy_sets():
    policy = properties(Stack(load()), "CorsHeadersPolicy")["ResponseHeadersPolicyConfig"]
    cors = policy["CorsConfig"]
    vcl = (ROOT / "local" / "edge" / "offload.vcl").read_text()

    def set_to(header: str) -> set[str]:
        found = re.search(rf'set resp\.http\.{header} = "([^"]*)";', vcl)
        assert found, header
        return set(found[1].split(","))

    assert set_to("Access-Control-Allow-Origin") == set(cors["AccessControlAllowOrigins"]["Items"])
    assert set_to("Access-Control-Expose-Headers") == set(
        cors["AccessControlExposeHeaders"]["Items"]
    )
    assert set_to("Access-Control-Allow-Headers") == set(
        cors["AccessControlAllowHeaders"]["Items"]
    )
    assert set_to("Access-Control-Max-Age") == {str(cors["AccessControlMaxAgeSec"])}


def bucket_rules() -> list[CorsRule]:
    [rules] = Stack(load()).bucket_cors_rules().values()
    return [CorsRule.of(rule) for rule in rules]


def preflight(origin: str | None, method: str, headers: str = "") -> tuple[str, dict[str, str]]:
    environ = {"REQUEST_METHOD": "OPTIONS", "PATH_INFO": "/bucket/files/x.json"}
    if origin is not None:
        environ["HTTP_ORIGIN"] = origin
    environ["HTTP_ACCESS_CONTROL_REQUEST_METHOD"] = method
    if headers:
        environ["HTTP_ACCESS_CONTROL_REQUEST_HEADERS"] = headers
    answer: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = status, dict(response_headers)

    def moto(environ: dict[str, Any], start: Any) -> list[bytes]:
        raise AssertionError("a preflight never reaches moto")

    rules = bucket_rules()
    list(BucketCors(moto, rules=lambda bucket: rules if bucket == "bucket" else None)(
        environ, start_response
    ))
    return answer["status"], answer["headers"]


def test_the_bucket_passes_the_preflight_a_browser_sends_after_a_redirect():
    status, headers = preflight("null", "GET", "x-api-key,range")
    assert status == "200 OK"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Headers"] == "x-api-key, range"


@pytest.mark.parametrize(
    "origin, method, headers, status",
    [
        ("https://page.example", "PUT", "", HTTPStatus.FORBIDDEN),
        ("https://page.example", "GET", "x-unknown", HTTPStatus.FORBIDDEN),
        (None, "GET", "", HTTPStatus.BAD_REQUEST),
    ],
)
def test_the_bucket_refuses_what_its_rules_do_not_allow(origin, method, headers, status):
    answered, _ = preflight(origin, method, headers)
    assert answered.startswith(str(int(status)))


def test_the_gateway_replaces_a_functions_cors_headers():
    cors = ApiCors.of(Stack(load()).api_cors())
    answer = [("Content-Type", "application/json"), ("Access-Control-Allow-Origin", "https://x")]
    applied = dict(cors.apply({"origin": "https://page.example"}, answer))
    assert applied["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in applied
    # Without an Origin, API Gateway adds none (the edge's policy does, per answer)
    assert cors.apply({}, answer) == [("Content-Type", "application/json")]
