"""The CloudFront distribution in template.yaml: what clients and operators rely on.

Read with the local stack's own loader and resolved for three deployments: the CDN with a
signing key, the CDN without one (the template's defaults), and no CDN.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from offload.config import Settings
from offload.files import OBJECT_PREFIX
from offload_local.template import Stack, load
from tests.support import plugins
from tests.support.clients import require
from tests.support.paths import CANONICAL, NON_CANONICAL

PUBLIC_KEY = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0B\n-----END PUBLIC KEY-----"
SIGNING = {"CdnPublicKey": PUBLIC_KEY, "CloudFrontPrivateKeyParameter": "/offload-test/cf-key"}
# Managed policies, by the IDs AWS documents, with the cache key settings they fix.
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
NOTHING_IN_THE_KEY = {
    "HeadersConfig": {"HeaderBehavior": "none"},
    "CookiesConfig": {"CookieBehavior": "none"},
    "QueryStringsConfig": {"QueryStringBehavior": "none"},
}
MANAGED_CACHE_POLICIES = {
    CACHING_DISABLED: {"MinTTL": 0, "DefaultTTL": 0, "MaxTTL": 0, **NOTHING_IN_THE_KEY},
    CACHING_OPTIMIZED: {"MinTTL": 1, "DefaultTTL": 86400, "MaxTTL": 31536000, **NOTHING_IN_THE_KEY},
}


def stack(**parameters: str) -> Stack:
    return Stack(load(), parameters=dict(parameters))


def resolved(stack: Stack, logical_id: str) -> dict[str, Any]:
    return stack.resolve(stack.template["Resources"][logical_id]["Properties"])


def distribution(stack: Stack) -> dict[str, Any]:
    [logical_id] = stack.resources("AWS::CloudFront::Distribution")
    return resolved(stack, logical_id)["DistributionConfig"]


def behaviours(stack: Stack) -> dict[str, dict[str, Any]]:
    """Each cache behaviour by path pattern, the default one as `*`."""
    config = distribution(stack)
    found = {"*": config["DefaultCacheBehavior"]}
    found.update({b["PathPattern"]: b for b in config.get("CacheBehaviors", [])})
    return found


def cache_policy(stack: Stack, behaviour: dict[str, Any]) -> dict[str, Any]:
    """A behaviour's cache policy as TTLs plus what is in the key, managed or the template's."""
    policy_id = behaviour["CachePolicyId"]
    if policy_id in MANAGED_CACHE_POLICIES:
        return MANAGED_CACHE_POLICIES[policy_id]
    for logical_id in stack.resources("AWS::CloudFront::CachePolicy"):
        if stack.resource_name(logical_id) == policy_id:
            config = resolved(stack, logical_id)["CachePolicyConfig"]
            return {**config, **config["ParametersInCacheKeyAndForwardedToOrigin"]}
    raise AssertionError(f"unknown cache policy {policy_id}")


@pytest.fixture(params=["signing", "api-only"])
def cdn(request: pytest.FixtureRequest) -> Stack:
    return stack(**SIGNING) if request.param == "signing" else stack()


def test_feeds_are_never_cached_at_the_edge(cdn: Stack):
    feeds = behaviours(cdn)["/feeds/*"]
    policy = cache_policy(cdn, feeds)
    assert (policy["MinTTL"], policy["DefaultTTL"], policy["MaxTTL"]) == (0, 0, 0)
    # API keys still reach the origin: all viewer headers and the query (?key=) go through.
    assert feeds["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER
    assert feeds["TargetOriginId"] == "api"


INDEX_BEHAVIOUR = "/*/*/*/index"


def cloudfront_matches(pattern: str, path: str) -> bool:
    """CloudFront's path patterns: `*` is any characters, `/` included; `?` is one."""
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.fullmatch(regex, path) is not None


def test_the_index_is_keyed_on_version_only(cdn: Stack):
    policy = cache_policy(cdn, behaviours(cdn)[INDEX_BEHAVIOUR])
    assert policy["QueryStringsConfig"] == {
        "QueryStringBehavior": "whitelist",
        "QueryStrings": ["version"],
    }


@pytest.mark.parametrize("collection", list(plugins().collections), ids=lambda c: c.name)
def test_every_collections_index_and_only_it_takes_the_index_behaviour(cdn: Stack, collection):
    # GIVEN a registered collection's URLs
    ref = collection.of("x-1")
    index = ref.index_url("1").split("?")[0]
    others = [f"/{ref.path}/version", ref.page_url("0" * 64), collection.entity_path("index")]

    # THEN the first behaviour each path matches, in the distribution's order, is the
    # index's for the index alone (the rest follow the origin's Cache-Control, path-keyed)
    order = [b["PathPattern"] for b in distribution(cdn).get("CacheBehaviors", [])]

    def first(path: str) -> str:
        return next((pattern for pattern in order if cloudfront_matches(pattern, path)), "*")

    assert first(index) == INDEX_BEHAVIOUR
    assert [first(path) for path in others] == ["*"] * len(others)
    assert first("/feeds/a/b/index") == "/feeds/*"


def test_the_default_behaviour_caches_only_what_the_origin_marks_cacheable(cdn: Stack):
    default = behaviours(cdn)["*"]
    policy = cache_policy(cdn, default)
    assert (policy["MinTTL"], policy["DefaultTTL"]) == (0, 0)
    assert policy["MaxTTL"] >= 31_536_000  # immutable snapshots keep their year
    assert policy["QueryStringsConfig"] == {"QueryStringBehavior": "none"}
    # Every method passes through; only GET and HEAD are cached.
    assert "POST" in default["AllowedMethods"]
    assert sorted(default["CachedMethods"]) == ["GET", "HEAD"]


def test_no_cache_key_holds_a_header_but_the_default_s_authorization_or_a_cookie(cdn: Stack):
    for pattern, behaviour in behaviours(cdn).items():
        policy = cache_policy(cdn, behaviour)
        headers = policy["HeadersConfig"]
        if pattern == "*":
            # So that CloudFront forwards it to the collections' POST routes; the viewer
            # function removes it from every read (below).
            assert headers == {"HeaderBehavior": "whitelist", "Headers": ["Authorization"]}
        else:
            assert headers == {"HeaderBehavior": "none"}, pattern
        assert policy["CookiesConfig"] == {"CookieBehavior": "none"}


def test_host_is_never_forwarded_to_the_api(cdn: Stack):
    assert not cdn.resources("AWS::CloudFront::OriginRequestPolicy")
    for behaviour in behaviours(cdn).values():
        if behaviour["TargetOriginId"] == "api":
            assert behaviour["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER


def test_compression_is_on_everywhere(cdn: Stack):
    for behaviour in behaviours(cdn).values():
        assert behaviour["Compress"] is True
        policy = cache_policy(cdn, behaviour)
        if policy["MaxTTL"] and behaviour["CachePolicyId"] not in MANAGED_CACHE_POLICIES:
            assert policy["EnableAcceptEncodingGzip"] and policy["EnableAcceptEncodingBrotli"]


def test_viewers_use_https_only(cdn: Stack):
    config = distribution(cdn)
    assert {b["ViewerProtocolPolicy"] for b in behaviours(cdn).values()} == {"https-only"}
    [api] = [origin for origin in config["Origins"] if origin["Id"] == "api"]
    assert api["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert config["HttpVersion"] == "http2and3"


def test_errors_are_not_held_at_the_edge(cdn: Stack):
    errors = {
        e["ErrorCode"]: e["ErrorCachingMinTTL"] for e in distribution(cdn)["CustomErrorResponses"]
    }
    assert {400, 403, 404, 500, 502, 503, 504} <= errors.keys()
    assert set(errors.values()) == {0}


def test_files_come_from_the_bucket_through_oac_with_signed_urls():
    signing = stack(**SIGNING)
    files = behaviours(signing)[f"/{OBJECT_PREFIX}/*"]
    [origin] = [o for o in distribution(signing)["Origins"] if o["Id"] == files["TargetOriginId"]]
    assert origin["DomainName"] == signing.resource_name("FeedsBucket")
    [oac] = signing.resources("AWS::CloudFront::OriginAccessControl")
    assert origin["OriginAccessControlId"] == signing.resource_name(oac)
    access = resolved(signing, oac)["OriginAccessControlConfig"]
    assert (access["OriginAccessControlOriginType"], access["SigningProtocol"]) == ("s3", "sigv4")
    assert access["SigningBehavior"] == "always"
    assert files["CachePolicyId"] == CACHING_OPTIMIZED
    # Only URLs signed by the stack's key: the key group holds exactly CdnPublicKey.
    [group] = files["TrustedKeyGroups"]
    [group_id] = signing.resources("AWS::CloudFront::KeyGroup")
    assert group == signing.resource_name(group_id)
    [key_id] = resolved(signing, group_id)["KeyGroupConfig"]["Items"]
    [public_key] = signing.resources("AWS::CloudFront::PublicKey")
    assert key_id == signing.resource_name(public_key)
    assert resolved(signing, public_key)["PublicKeyConfig"]["EncodedKey"] == PUBLIC_KEY


def test_functions_sign_with_the_stack_s_key_and_the_domain_it_publishes():
    signing = stack(**SIGNING)
    [feeds] = [f for f in signing.functions() if f.logical_id == "FeedsFunction"]
    settings = Settings.from_mapping(feeds.environment)
    assert settings.signs_with_cloudfront
    assert settings.cloudfront_key_id == signing.resource_name("CdnSigningKey")
    assert settings.cloudfront_private_key_parameter == SIGNING["CloudFrontPrivateKeyParameter"]
    # The domain is read from the parameter the template writes from the distribution.
    domain = signing.template["Resources"]["CdnDomainParameter"]["Properties"]
    assert domain["Value"] == {"Fn::GetAtt": ["Distribution", "DomainName"]}
    assert settings.cloudfront_domain_parameter == signing.resolve(domain["Name"])
    # The feeds role may read exactly those two parameters.
    [ssm] = [
        statement
        for policy in resolved(signing, "FeedsFunction")["Policies"]
        for statement in policy.get("Statement", [])
        if statement["Action"] == "ssm:GetParameters"
    ]
    prefix = f"arn:aws:ssm:{signing.region}:{signing.account_id}:parameter"
    assert sorted(ssm["Resource"]) == sorted(
        prefix + name
        for name in (
            settings.cloudfront_private_key_parameter,
            settings.cloudfront_domain_parameter,
        )
    )


def test_without_a_key_files_stay_s3_presigned_and_the_cdn_fronts_only_the_api():
    api_only = stack()
    assert [o["Id"] for o in distribution(api_only)["Origins"]] == ["api"]
    assert f"/{OBJECT_PREFIX}/*" not in behaviours(api_only)
    for function in api_only.functions():
        assert not Settings.from_mapping(function.environment).signs_with_cloudfront
    assert "ssm:GetParameters" not in json.dumps(resolved(api_only, "FeedsFunction")["Policies"])


def test_the_bucket_policy_allows_only_the_distribution():
    for deployment in (stack(**SIGNING), stack(), stack(EnableCdn="false")):
        statements = resolved(deployment, "FeedsBucketPolicy")["PolicyDocument"]["Statement"]
        allowed = [s for s in statements if s["Effect"] == "Allow"]
        assert [s["Sid"] for s in statements if s["Effect"] == "Deny"] == ["TlsOnly"]
        if not deployment.condition("SignWithCloudFront"):
            assert allowed == []
            continue
        [allow] = allowed
        assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
        assert allow["Action"] == "s3:GetObject"
        assert allow["Resource"].endswith(f"/{OBJECT_PREFIX}/*")
        source = allow["Condition"]["StringEquals"]["AWS:SourceArn"]
        assert source.endswith(f":distribution/{deployment.resource_name('Distribution')}")


def test_generated_files_live_under_the_cdn_s_files_prefix():
    template = stack(**SIGNING)
    # No API route shares the prefix the bucket origin is served under.
    routes = [route.path for function in template.functions() for route in function.routes]
    assert not [path for path in routes if path.startswith(f"/{OBJECT_PREFIX}/")]
    [recorder] = [f for f in template.functions() if f.logical_id == "RecorderFunction"]
    assert {n.prefix for n in recorder.notifications} == {f"{OBJECT_PREFIX}/"}
    rules = resolved(template, "FeedsBucket")["LifecycleConfiguration"]["Rules"]
    assert {rule.get("Prefix") for rule in rules} == {f"{OBJECT_PREFIX}/", None}


def test_outputs_name_the_cdn_url_beside_the_api_url():
    outputs = load()["Outputs"]
    assert outputs["CdnUrl"]["Condition"] == "CdnEnabled"
    assert outputs["CdnUrl"]["Value"] == {"Fn::Sub": "https://${Distribution.DomainName}"}
    assert "ApiUrl" in outputs


def test_the_cdn_can_be_turned_off():
    off = stack(EnableCdn="false")
    for kind in ("Distribution", "CachePolicy", "PublicKey", "OriginAccessControl"):
        assert not off.resources(f"AWS::CloudFront::{kind}")
    assert not off.resources("AWS::SSM::Parameter")


def test_the_translated_template_has_no_dependency_cycle():
    """cfn-lint sees SAM's generated resources only after the transform: run it on its output.

    `sam validate --lint` lints the SAM template itself, where a function referring to the
    distribution looks harmless; the cycle (distribution -> API -> integrations -> function)
    only exists once SAM has generated the API's integrations.
    """
    from cfnlint.api import ManualArgs, lint

    from offload_local.translate import translated as transformed

    translated = transformed()
    matches = lint(json.dumps(translated), config=ManualArgs(regions=["us-east-1"]))
    assert [str(m) for m in matches if m.rule.id == "E3004"] == []


def canonical_path_function(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The logical id and properties of the distribution's viewer-request function."""
    [(logical_id, resource)] = [
        (logical_id, resource)
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudFront::Function"
    ]
    return logical_id, resource["Properties"]


def test_every_behaviour_refuses_non_canonical_paths_before_its_cache(cdn: Stack):
    logical_id, function = canonical_path_function(cdn.template)
    assert function["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
    assert function["AutoPublish"] is True
    for pattern, behaviour in behaviours(cdn).items():
        assert behaviour["FunctionAssociations"] == [
            {"EventType": "viewer-request", "FunctionARN": cdn.resource_name(logical_id)}
        ], pattern


def run_viewer_request(
    code: str,
    uris: Sequence[str],
    tmp_path: Path,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The function's answer to a request of each URI, under Node, as CloudFront calls it."""
    node = require("node")
    harness = tmp_path / "harness.js"
    harness.write_text(
        "const handler = new Function(require('fs').readFileSync(process.argv[2], 'utf8')"
        " + '\\nreturn handler;')();\n"
        "const [uris, method, headers] = JSON.parse(process.argv[3]);\n"
        "console.log(JSON.stringify(uris.map((uri) => handler({version: '1.0', request:"
        " {method: method, uri: uri, querystring: {}, headers: structuredClone(headers),"
        " cookies: {}}}))));\n"
    )
    source = tmp_path / "function.js"
    source.write_text(code)
    viewer = {name: {"value": value} for name, value in (headers or {}).items()}
    result = subprocess.run(
        [node, str(harness), str(source), json.dumps([list(uris), method, viewer])],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answers: list[dict[str, Any]] = json.loads(result.stdout)
    return answers


@pytest.fixture
def function_code() -> str:
    """The function's JavaScript, from the template as CloudFormation receives it."""
    from offload_local.translate import translated

    _, function = canonical_path_function(translated())
    code: str = function["FunctionCode"]
    return code


def test_the_function_passes_canonical_paths_unchanged(function_code, tmp_path):
    answers = run_viewer_request(function_code, CANONICAL, tmp_path)
    for uri, answer in zip(CANONICAL, answers, strict=True):
        assert answer.get("uri") == uri, (uri, answer)


def test_the_function_refuses_every_other_spelling_with_a_no_store_problem(function_code, tmp_path):
    answers = run_viewer_request(function_code, NON_CANONICAL, tmp_path)
    for uri, answer in zip(NON_CANONICAL, answers, strict=True):
        assert answer["statusCode"] == HTTPStatus.BAD_REQUEST, (uri, answer)
        headers = {name: value["value"] for name, value in answer["headers"].items()}
        assert headers["content-type"] == "application/problem+json"
        assert headers["cache-control"] == "no-store"
        assert headers["access-control-allow-origin"] == "*"
        problem = json.loads(answer["body"]["data"])
        assert problem["status"] == HTTPStatus.BAD_REQUEST and problem["detail"]


def test_a_key_sent_with_a_read_never_reaches_the_cache_key_but_a_post_keeps_it(
    function_code, tmp_path
):
    def request(uris: list[str], method: str) -> list[dict[str, Any]]:
        bearer = {"authorization": "Bearer some-key"}
        return run_viewer_request(function_code, uris, tmp_path, method=method, headers=bearer)

    reads = ["/users/42/matches/version", "/repos/offload/releases/index", "/matches/m-1"]
    for method in ("GET", "HEAD"):
        for answer in request(reads, method):
            assert "authorization" not in answer["headers"], answer
    [feed] = request(["/feeds/catalog.json"], "GET")
    [post] = request(["/releases"], "POST")
    assert feed["headers"]["authorization"] == {"value": "Bearer some-key"}
    assert post["headers"]["authorization"] == {"value": "Bearer some-key"}
