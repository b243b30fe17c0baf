"""Every alarm and dashboard metric is one that something emits, with the dimensions it has.

An alarm on a metric nobody emits stays silent forever (`TreatMissingData: notBreaching`), so
each is checked against its source: Offload's own metrics against the `add_metric` calls in
the code each function runs (and Powertools' dimension for them, `service`, the function's
POWERTOOLS_SERVICE_NAME); AWS's against the metrics and dimensions each service documents.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from offload.observability import METRICS_NAMESPACE
from offload_local.template import NO_VALUE, ROOT, Stack, load

TEMPLATE = load()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
PACKAGE = ROOT / "layers" / "common"
DOCS = ROOT / "docs" / "operations.md"

# The metrics AWS services publish that the template uses, with the dimension each alarm
# names and the resource type that dimension's value must be: the CloudWatch metrics pages of
# Lambda ("Types of metrics for Lambda functions"), API Gateway ("HTTP API metrics"), SQS
# ("Available CloudWatch metrics for Amazon SQS") and DynamoDB ("DynamoDB Metrics").
AWS_METRICS: dict[tuple[str, str], dict[str, str]] = (
    {
        ("AWS/Lambda", name): {"FunctionName": "AWS::Serverless::Function"}
        for name in ("Errors", "Throttles", "Duration", "Invocations")
    }
    | {
        ("AWS/ApiGateway", name): {"ApiId": "AWS::Serverless::HttpApi"}
        for name in ("Count", "4xx", "5xx", "Latency")
    }
    | {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"): {"QueueName": "AWS::SQS::Queue"},
        ("AWS/DynamoDB", "ReadThrottleEvents"): {"TableName": "AWS::DynamoDB::Table"},
        ("AWS/DynamoDB", "WriteThrottleEvents"): {"TableName": "AWS::DynamoDB::Table"},
    }
)
SERVICE_DIMENSION = "service"


def alarms() -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in RESOURCES.items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def alarm_metrics(properties: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(namespace, metric, {dimension: value}) of an alarm, single-metric or math."""
    if "MetricName" in properties:
        dims = {d["Name"]: d["Value"] for d in properties["Dimensions"]}
        yield properties["Namespace"], properties["MetricName"], dims
    for query in properties.get("Metrics", []):
        if stat := query.get("MetricStat"):
            metric = stat["Metric"]
            dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            yield metric["Namespace"], metric["MetricName"], dims


def dashboard_metrics() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """The dashboard's metrics, `${X}` placeholders turned into the references they are."""
    body = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    document = json.loads(re.sub(r"\$\{([^}]+)\}", r"<\1>", body))
    for widget in document["widgets"]:
        for line in widget["properties"]["metrics"]:
            if isinstance(line[0], dict):  # an expression
                continue
            namespace, name, *rest = (item for item in line if not isinstance(item, dict))
            dims: dict[str, Any] = {}
            for key, value in zip(rest[::2], rest[1::2], strict=True):
                match = re.fullmatch(r"<([A-Za-z]+)(?:\.([A-Za-z]+))?>", value)
                if match and match[2]:
                    dims[key] = {"Fn::GetAtt": [match[1], match[2]]}
                elif match:
                    dims[key] = {"Ref": match[1]}
                else:
                    dims[key] = value
            yield namespace, name, dims


def module_file(module: str) -> Path | None:
    base = PACKAGE / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """The offload modules a file imports (a `from offload.x import y` may name module y)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("offload")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("offload"):
            found.add(str(node.module))
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {module for module in found if module_file(module) is not None}


def reachable(handler: Path) -> set[Path]:
    """The handler and every offload module it imports, transitively."""
    seen, todo = {handler}, [handler]
    while todo:
        for module in imported_modules(todo.pop()):
            path = module_file(module)
            assert path is not None
            if path not in seen:
                seen.add(path)
                todo.append(path)
    return seen


def emitted(path: Path) -> set[str]:
    """Metric names a file adds with `metrics.add_metric(name="...")`."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_metric"
        ):
            for keyword in node.keywords:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    names.add(keyword.value.value)
    return names


def offload_metrics_by_service() -> dict[str, set[str]]:
    """The metrics each function emits, by its POWERTOOLS_SERVICE_NAME."""
    services: dict[str, set[str]] = {}
    for resource in RESOURCES.values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        service = properties["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        module = properties["Handler"].split(".")[0]
        handler = ROOT / properties["CodeUri"] / f"{module}.py"
        services[service] = set().union(*(emitted(path) for path in reachable(handler)))
    return services


EMITTED = offload_metrics_by_service()


def check(namespace: str, name: str, dims: dict[str, Any]) -> None:
    if namespace == METRICS_NAMESPACE:
        assert set(dims) == {SERVICE_DIMENSION}, f"{name}: Powertools adds `service` only"
        service = dims[SERVICE_DIMENSION]
        assert name in EMITTED.get(service, set()), f"{service} never emits {name}"
        return
    expected = AWS_METRICS.get((namespace, name))
    assert expected is not None, f"{namespace} {name} is not a metric the template may use"
    assert set(dims) == set(expected), f"{namespace} {name} has dimensions {sorted(expected)}"
    for dimension, value in dims.items():
        [(kind, argument)] = value.items()
        logical_id = argument[0] if kind == "Fn::GetAtt" else argument
        assert RESOURCES[logical_id]["Type"] == expected[dimension], (namespace, name, value)
        if kind == "Fn::GetAtt":
            assert argument[1] == "QueueName"


@pytest.mark.parametrize("alarm", sorted(alarms()))
def test_each_alarm_watches_a_metric_that_is_emitted(alarm: str) -> None:
    watched = list(alarm_metrics(alarms()[alarm]))
    assert watched
    for namespace, name, dims in watched:
        check(namespace, name, dims)


def test_each_dashboard_metric_is_emitted() -> None:
    shown = list(dashboard_metrics())
    assert len(shown) > 10
    for namespace, name, dims in shown:
        check(namespace, name, dims)


def test_powertools_dimensions_offload_metrics_by_service_alone(monkeypatch) -> None:
    # WHEN a function's metrics object (as observability makes it) emits one metric
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "feeds")
    metrics = Metrics(namespace=METRICS_NAMESPACE)
    metrics.add_metric(name="Hits", unit=MetricUnit.Count, value=1)
    blob = metrics.serialize_metric_set()
    metrics.clear_metrics()
    # THEN its only dimension is `service`, the function's service name
    [directive] = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == METRICS_NAMESPACE
    assert directive["Dimensions"] == [[SERVICE_DIMENSION]]
    assert blob[SERVICE_DIMENSION] == "feeds"


def test_the_watched_signals_are_all_there() -> None:
    watched = {(ns, name) for p in alarms().values() for ns, name, _ in alarm_metrics(p)}
    assert {
        ("AWS/ApiGateway", "5xx"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/Lambda", "Duration"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/DynamoDB", "ReadThrottleEvents"),
        (METRICS_NAMESPACE, "GenerationFailures"),
        (METRICS_NAMESPACE, "LockWaits"),
    } <= watched
    functions = [n for n, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"]
    for metric in ("Errors", "Throttles"):
        covered = {
            dims["FunctionName"]["Ref"]
            for p in alarms().values()
            for ns, name, dims in alarm_metrics(p)
            if (ns, name) == ("AWS/Lambda", metric)
        }
        assert covered == set(functions), metric


@pytest.mark.parametrize("alarm", sorted(alarms()))
def test_each_alarm_says_what_it_means_and_the_docs_list_it(alarm: str) -> None:
    properties = alarms()[alarm]
    assert len(properties["AlarmDescription"]) > 120
    assert properties["TreatMissingData"] == "notBreaching"
    assert RESOURCES[alarm]["Condition"] == "AlarmsEnabled"
    suffix = properties["AlarmName"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
    assert f"`{suffix}`" in DOCS.read_text(), f"docs/operations.md does not list {suffix}"


def alarm_actions(stack: Stack) -> set[str]:
    actions = set()
    for alarm in stack.resources("AWS::CloudWatch::Alarm").values():
        resolved = stack.resolve(alarm["Properties"].get("AlarmActions", []))
        actions.update([] if resolved is NO_VALUE else resolved)
    return actions


def test_alarms_are_on_by_default_and_a_parameter_turns_them_off() -> None:
    assert len(Stack(load()).resources("AWS::CloudWatch::Alarm")) == len(alarms())
    assert Stack(load()).resources("AWS::CloudWatch::Dashboard")
    off = Stack(load(), parameters={"EnableAlarms": "false"})
    assert off.resources("AWS::CloudWatch::Alarm") == {}
    assert off.resources("AWS::CloudWatch::Dashboard") == {}


def test_notifications_go_to_a_named_topic_or_to_an_e_mail_address() -> None:
    # Without a destination, alarms only change state
    assert alarm_actions(Stack(load())) == set()
    assert Stack(load()).resources("AWS::SNS::Topic") == {}
    # A topic ARN is used as it is
    topic = "arn:aws:sns:eu-west-1:123456789012:on-call"
    named = Stack(load(), parameters={"AlarmNotification": topic})
    assert alarm_actions(named) == {topic}
    assert named.resources("AWS::SNS::Topic") == {}
    # An e-mail address gets a topic of the stack's, subscribed
    mailed = Stack(load(), parameters={"AlarmNotification": "ops@example.com"})
    [(name, created)] = mailed.resources("AWS::SNS::Topic").items()
    assert alarm_actions(mailed) == {mailed.resource_name(name)}
    [subscription] = mailed.resolve(created["Properties"]["Subscription"])
    assert subscription == {"Protocol": "email", "Endpoint": "ops@example.com"}
