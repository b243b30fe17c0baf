"""What a first deploy to AWS would trip over, read from the template as CloudFormation gets it.

moto, cfn-lint and checkov accept all of these; AWS does not (or does, and misbehaves). Each
test reads SAM's transformed template (`offload_local.translate`), resolved for a deployment
with the local stack's resolver, so what is checked is what CloudFormation would create.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
import subprocess
import tomllib
from typing import Any

import pytest
import yaml

from offload_local.template import NO_VALUE, ROOT, Stack, load
from offload_local.translate import translated

PUBLIC_KEY = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0B\n-----END PUBLIC KEY-----"


@functools.cache
def transformed() -> dict[str, Any]:
    return translated()


def deployment(**parameters: str) -> Stack:
    """The transformed template resolved for these parameter values (the rest: defaults)."""
    return Stack(transformed(), parameters=dict(parameters))


def resources(stack: Stack, kind: str) -> dict[str, dict[str, Any]]:
    return stack.resources(kind)


def properties(stack: Stack, logical_id: str) -> dict[str, Any]:
    """A resource's properties resolved, those that resolve to AWS::NoValue left out."""
    resolved = stack.resolve(stack.template["Resources"][logical_id].get("Properties", {}))
    return {name: value for name, value in resolved.items() if value is not NO_VALUE}


@pytest.mark.parametrize("kind", ["AWS::DynamoDB::Table", "AWS::S3::Bucket"])
def test_named_stores_are_kept_on_delete_but_not_after_a_failed_create(kind: str):
    # A fixed name plus Retain: a first create that rolls back keeps the table or bucket, and
    # every retry fails with "already exists". RetainExceptOnCreate deletes what the failed
    # create made, and keeps it in every later operation.
    stores = resources(deployment(), kind)
    assert stores
    for logical_id, resource in stores.items():
        assert resource["DeletionPolicy"] == "RetainExceptOnCreate", logical_id
        assert resource["UpdateReplacePolicy"] == "Retain", logical_id


def bucket_notifications(stack: Stack) -> list[dict[str, Any]]:
    """The Lambda notifications of the stack's bucket, resolved."""
    [bucket] = resources(stack, "AWS::S3::Bucket")
    configuration = properties(stack, bucket)["NotificationConfiguration"]
    return list(configuration["LambdaConfigurations"])


def test_the_recorder_hears_of_expired_files_as_of_removed_ones():
    # The lifecycle rule's expiries are LifecycleExpiration:Delete, never ObjectRemoved:*:
    # without it an expired file's entry lingers until a request's HEAD finds it gone.
    stack = deployment()
    recorder = stack.resource_name("RecorderFunction")
    targets = {
        (n["Event"], n["Filter"]["S3Key"]["Rules"][0]["Value"])
        for n in bucket_notifications(stack)
        if recorder in n["Function"]
    }
    assert ("s3:LifecycleExpiration:Delete", "files/") in targets
    assert {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"} <= {event for event, _ in targets}
    # The rule it follows expires exactly what the recorder hears of.
    [bucket] = resources(stack, "AWS::S3::Bucket")
    rules = properties(stack, bucket)["LifecycleConfiguration"]["Rules"]
    assert {r["Prefix"] for r in rules if "ExpirationInDays" in r} == {"files/"}
    # The local stack delivers it too: its recorder subscribes to what the bucket sends.
    [local] = [f for f in Stack(load()).functions() if f.logical_id == "RecorderFunction"]
    assert any(
        n.matches(stack.resource_name("FeedsBucket"), "LifecycleExpiration:Delete", "files/x")
        for n in local.notifications
    )


def test_only_the_stack_s_bucket_may_invoke_the_recorder():
    stack = deployment()
    bucket_arn = f"arn:aws:s3:::{stack.resource_name('FeedsBucket')}"
    from_s3 = {
        logical_id: properties(stack, logical_id)
        for logical_id in resources(stack, "AWS::Lambda::Permission")
        if properties(stack, logical_id)["Principal"] == "s3.amazonaws.com"
    }
    assert from_s3
    for logical_id, permission in from_s3.items():
        # SourceAccount alone lets any bucket in the account invoke the function.
        assert permission.get("SourceArn") == bucket_arn, logical_id
        assert permission["SourceAccount"] == stack.account_id, logical_id
    # S3 checks the permission when the notifications are set: the bucket waits for it.
    [bucket] = resources(stack, "AWS::S3::Bucket")
    depends_on = stack.template["Resources"][bucket].get("DependsOn", [])
    assert set(from_s3) <= set([depends_on] if isinstance(depends_on, str) else depends_on)


def log_group_of(stack: Stack, arn_or_name: str) -> dict[str, Any]:
    """The log group resource an ARN or a name refers to."""
    for logical_id in resources(stack, "AWS::Logs::LogGroup"):
        arn = stack.resolve({"Fn::GetAtt": [logical_id, "Arn"]})
        if arn_or_name in (stack.resource_name(logical_id), arn):
            return properties(stack, logical_id)
    raise AssertionError(f"no log group {arn_or_name} in the template")


def test_every_function_logs_to_a_group_that_expires():
    # Lambda's own /aws/lambda/* groups keep logs forever.
    stack = deployment(LogRetentionDays="14")
    functions = resources(stack, "AWS::Lambda::Function")
    assert functions
    for logical_id in functions:
        group = properties(stack, logical_id)["LoggingConfig"]["LogGroup"]
        assert log_group_of(stack, group)["RetentionInDays"] == "14", logical_id


def test_the_api_logs_every_request_429s_and_integration_errors_included():
    stack = deployment(LogRetentionDays="90")
    [stage] = resources(stack, "AWS::ApiGatewayV2::Stage")
    settings = properties(stack, stage)["AccessLogSettings"]
    assert log_group_of(stack, settings["DestinationArn"])["RetentionInDays"] == "90"
    fields = json.loads(settings["Format"])
    for variable in (
        "$context.requestId",
        "$context.routeKey",
        "$context.status",
        "$context.integrationErrorMessage",
        "$context.error.message",
        "$context.responseLatency",
    ):
        assert variable in fields.values(), variable


def test_the_generator_s_concurrency_is_capped_when_a_reservation_is_named():
    capped = deployment(GeneratorReservedConcurrency="5")
    generator = capped.resource_name("FeedGeneratorFunction")
    [logical_id] = [
        f
        for f in resources(capped, "AWS::Lambda::Function")
        if properties(capped, f).get("FunctionName") == generator
    ]
    assert properties(capped, logical_id)["ReservedConcurrentExecutions"] == "5"
    # The default reserves nothing: a new account (a quota of 10) must keep 10 unreserved.
    assert "ReservedConcurrentExecutions" not in properties(deployment(), logical_id)
    # Only the generator is capped; the API functions share what is left.
    for other in set(resources(capped, "AWS::Lambda::Function")) - {logical_id}:
        assert "ReservedConcurrentExecutions" not in properties(capped, other), other


# Managed CloudFront policies, by the IDs AWS documents.
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
# API Gateway waits at most this long for an integration (HTTP API quota, not adjustable).
API_GATEWAY_INTEGRATION_TIMEOUT = 30
SIGNING = {"CdnPublicKey": PUBLIC_KEY, "CloudFrontPrivateKeyParameter": "/offload-test/cf-key"}


def distribution(stack: Stack) -> dict[str, Any]:
    [logical_id] = resources(stack, "AWS::CloudFront::Distribution")
    return dict(properties(stack, logical_id)["DistributionConfig"])


def cache_policy_of(stack: Stack, behaviour: dict[str, Any]) -> dict[str, Any]:
    """The template's cache policy a behaviour names."""
    for logical_id in resources(stack, "AWS::CloudFront::CachePolicy"):
        if stack.resource_name(logical_id) == behaviour["CachePolicyId"]:
            return dict(properties(stack, logical_id)["CachePolicyConfig"])
    raise AssertionError(f"not a policy of the template: {behaviour['CachePolicyId']}")


def behaviour_for(stack: Stack, path: str) -> dict[str, Any]:
    """The cache behaviour CloudFront picks for a path: the first pattern that matches."""
    config = distribution(stack)
    for behaviour in config.get("CacheBehaviors", []):
        # CloudFront's patterns: `*` any characters, `/` included; `?` one character.
        if fnmatch.fnmatchcase(path, behaviour["PathPattern"]):
            return dict(behaviour)
    return dict(config["DefaultCacheBehavior"])


def api_routes() -> list[tuple[str, str]]:
    """Each HttpApi route of the template as (method, a path that matches it)."""
    return [
        (route.method, re.sub(r"\{[^}]+\}", "x1", route.path))
        for function in Stack(load()).functions()
        for route in function.routes
    ]


@pytest.mark.parametrize("parameters", [{}, SIGNING], ids=["api-only", "signing"])
def test_cloudfront_never_times_out_a_request_the_api_is_still_serving(parameters):
    stack = deployment(**parameters)
    [api] = [o for o in distribution(stack)["Origins"] if o["Id"] == "api"]
    # A response timeout makes CloudFront send the request again, up to ConnectionAttempts
    # times: each a function run and a count against the client's limit.
    read_timeout = int(api["CustomOriginConfig"].get("OriginReadTimeout", 30))
    longest = max(f.timeout for f in Stack(load()).functions() if f.routes)
    assert read_timeout > max(longest, API_GATEWAY_INTEGRATION_TIMEOUT)
    assert read_timeout <= 60  # CloudFront's limit without a quota increase


@pytest.mark.parametrize("parameters", [{}, SIGNING], ids=["api-only", "signing"])
def test_every_write_route_reaches_the_api_uncached_with_its_authorization(parameters):
    stack = deployment(**parameters)
    writes = [(m, p) for m, p in api_routes() if m not in ("GET", "HEAD", "OPTIONS")]
    assert writes
    for method, path in writes:
        behaviour = behaviour_for(stack, path)
        assert method in behaviour["AllowedMethods"], path
        assert behaviour["TargetOriginId"] == "api", path
        # With caching on, CloudFront forwards Authorization only as part of the cache key:
        # either caching is off with all viewer headers, or the key holds Authorization.
        assert behaviour["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER, path
        if behaviour["CachePolicyId"] != CACHING_DISABLED:
            policy = cache_policy_of(stack, behaviour)
            headers = policy["ParametersInCacheKeyAndForwardedToOrigin"]["HeadersConfig"]
            assert "Authorization" in headers.get("Headers", []), path


def public_key(stack: Stack) -> dict[str, Any]:
    [logical_id] = resources(stack, "AWS::CloudFront::PublicKey")
    return dict(properties(stack, logical_id)["PublicKeyConfig"])


def test_a_new_signing_key_does_not_collide_with_the_one_it_replaces():
    # CloudFront refuses to change a key's EncodedKey in place, so a new key is a new resource
    # created while the old one still exists: Name and CallerReference must differ.
    old = public_key(deployment(**SIGNING, CdnPublicKeyVersion="1"))
    new = public_key(deployment(**SIGNING, CdnPublicKeyVersion="2"))
    assert old["Name"] != new["Name"]
    assert old["CallerReference"] != new["CallerReference"]
    assert len(new["Name"]) <= 128  # CloudFront's limit for a key's name


def test_the_public_key_pem_can_come_from_ssm():
    # `sam deploy --guided` takes one line per answer; a PEM has several.
    stack = deployment(
        CdnPublicKeyParameter="/offload-test/cf-public-key",
        CloudFrontPrivateKeyParameter="/offload-test/cf-key",
    )
    assert stack.condition("SignWithCloudFront")
    assert public_key(stack)["EncodedKey"] == "{{resolve:ssm:/offload-test/cf-public-key}}"
    # A literal PEM still works, and neither means no signing.
    assert public_key(deployment(**SIGNING))["EncodedKey"] == PUBLIC_KEY
    assert not deployment(CloudFrontPrivateKeyParameter="/x").condition("SignWithCloudFront")


def test_functions_learn_the_cdn_domain_only_once_it_serves_files():
    # The functions sign CloudFront URLs only once they find the domain parameter: it must
    # not exist before the distribution (with its /files/* behaviour) and the bucket policy
    # that lets it read are in place, or new containers hand out links that fail.
    signing = deployment(**SIGNING)
    [parameter] = [
        logical_id
        for logical_id in resources(signing, "AWS::SSM::Parameter")
        if properties(signing, logical_id)["Name"].endswith("/cdn-domain")
    ]
    resource = signing.template["Resources"][parameter]
    assert resource["Properties"]["Value"] == {"Fn::GetAtt": ["Distribution", "DomainName"]}
    depends_on = resource.get("DependsOn", [])
    assert "FeedsBucketPolicy" in ([depends_on] if isinstance(depends_on, str) else depends_on)
    # Without signing it does not exist at all, so switching signing on creates it afresh.
    assert not resources(deployment(), "AWS::SSM::Parameter")


WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"
BOOTSTRAP = ROOT / "deploy" / "bootstrap.yaml"


def check_stack_name(**variables: str) -> subprocess.CompletedProcess[str]:
    arguments = [f"{name}={value}" for name, value in variables.items()]
    return subprocess.run(
        ["make", "--no-print-directory", "-s", "check-stack-name", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_longest_stack_name_the_check_allows_still_makes_a_valid_bucket_name():
    bucket = Stack(load(), stack_name="a" * 44).resource_name("FeedsBucket")
    assert len(bucket) == 63  # S3's limit, with a 12-digit account id
    assert check_stack_name(STACK_NAME="a" * 44).returncode == 0
    assert check_stack_name(STACK_NAME="a" * 45).returncode != 0


@pytest.mark.parametrize("name", ["Offload-Prod", "offload_prod", "1offload", "xn--offload"])
def test_a_stack_name_that_makes_an_invalid_bucket_name_is_refused(name: str):
    checked = check_stack_name(STACK_NAME=name)
    assert checked.returncode != 0
    assert "bucket name" in checked.stdout


def test_every_configured_environment_has_a_valid_stack_name():
    environments = tomllib.loads((ROOT / "samconfig.toml").read_text())
    deployed = [
        name
        for name, section in environments.items()
        if isinstance(section, dict) and "deploy" in section
    ]
    assert set(deployed) >= {"dev", "staging", "prod"}
    for environment in deployed:
        assert check_stack_name(ENV=environment).returncode == 0, environment


def workflow() -> dict[str, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as true.
    loaded["on"] = loaded.pop(True, loaded.get("on"))
    return dict(loaded)


def permissions(flow: dict[str, Any], job: str) -> dict[str, str]:
    """A job's token permissions: its own, or the workflow's."""
    return dict(flow["jobs"][job].get("permissions", flow.get("permissions", {})))


def test_only_the_deploy_job_can_mint_an_aws_token():
    flow = workflow()
    for name in flow["jobs"]:
        granted = permissions(flow, name).get("id-token")
        assert granted == ("write" if name == "deploy" else None), name


def test_pull_requests_run_the_tests_and_only_main_deploys():
    flow = workflow()
    assert "pull_request" in flow["on"]
    deploy = flow["jobs"]["deploy"]
    assert deploy["needs"] == "test"
    condition = deploy["if"]
    assert "github.ref == 'refs/heads/main'" in condition
    assert "github.event_name != 'pull_request'" in condition
    # workflow_dispatch runs from any branch: the `if` is what stops it there.
    assert "workflow_dispatch" in flow["on"]


def test_each_deploy_runs_in_its_environment_after_the_stack_name_check():
    flow = workflow()
    deploy = flow["jobs"]["deploy"]
    # The environment's protection rules are prod's confirmation, and its name is the OIDC
    # subject the role trusts.
    assert "inputs.environment" in deploy["environment"]
    choices = flow["on"]["workflow_dispatch"]["inputs"]["environment"]["options"]
    assert set(choices) == {"dev", "staging", "prod"}
    commands = [step.get("run", "") for step in deploy["steps"]]
    [check] = [i for i, run in enumerate(commands) if "make check-stack-name" in run]
    [deploying] = [i for i, run in enumerate(commands) if run.startswith("sam deploy")]
    assert check < deploying


def bootstrap(**parameters: str) -> Stack:
    return Stack(
        load(BOOTSTRAP),
        parameters={"GitHubOwner": "acme", "GitHubRepository": "offload", **parameters},
    )


def test_the_bootstrap_template_is_valid_cloudformation():
    from cfnlint.api import ManualArgs, lint

    matches = lint(BOOTSTRAP.read_text(), config=ManualArgs(regions=["us-east-1"]))
    assert [str(m) for m in matches] == []


def test_each_environment_s_role_trusts_that_github_environment_only():
    stack = bootstrap()
    trusted: dict[str, str] = {}
    for logical_id in resources(stack, "AWS::IAM::Role"):
        [statement] = properties(stack, logical_id)["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        equals = statement["Condition"]["StringEquals"]
        assert equals["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
        subject = equals["token.actions.githubusercontent.com:sub"]
        trusted[subject.rpartition(":")[2]] = subject
    # A job with `environment:` presents this subject, never refs/heads/main.
    choices = workflow()["on"]["workflow_dispatch"]["inputs"]["environment"]["options"]
    assert trusted == {env: f"repo:acme/offload:environment:{env}" for env in choices}


def test_no_deploy_role_can_change_its_own_permissions():
    stack = bootstrap()
    for logical_id in resources(stack, "AWS::IAM::Role"):
        role = properties(stack, logical_id)
        arn = f"arn:aws:iam::{stack.account_id}:role/{role['RoleName']}"
        for policy in role.get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                if any(action.startswith("iam:") for action in statement["Action"]):
                    assert not fnmatch.fnmatchcase(arn, statement["Resource"]), logical_id
