"""Reading template.yaml: CloudFormation tags, intrinsic functions, functions and routes.

The local stack and the tests take everything (table schema, routes, handlers, environment)
from the template, so there is no second description to drift from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samcli.yamlhelper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
NO_VALUE = object()


def load(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain data, intrinsic functions in their long form (SAM CLI's parser,
    the one `sam local` and `sam validate` read templates with)."""
    return yaml_parse(path.read_text())


@dataclass(frozen=True, slots=True)
class Route:
    """An HttpApi route of one function."""

    method: str
    path: str

    @property
    def pattern(self) -> re.Pattern[str]:
        """The path as a regex; `{name}` matches one segment, `{name+}` the rest."""
        regex = ""
        for part in re.split(r"(\{[^}]+\})", self.path):
            if part.startswith("{") and part.endswith("+}"):
                regex += f"(?P<{part[1:-2]}>.+)"
            elif part.startswith("{"):
                regex += f"(?P<{part[1:-1]}>[^/]+)"
            else:
                regex += re.escape(part)
        return re.compile(regex)

    @property
    def key(self) -> str:
        """API Gateway's routeKey, e.g. `GET /feeds/{file}`."""
        return f"{self.method} {self.path}"

    @property
    def specificity(self) -> tuple[int, int, int]:
        """Sort key: literal paths before variables, greedy variables last (as API Gateway)."""
        variables = re.findall(r"\{[^}]+\}", self.path)
        greedy = sum(variable.endswith("+}") for variable in variables)
        return (greedy, len(variables), self.method == "ANY")


def variable_conflicts(routes: Iterable[Route]) -> list[str]:
    """What API Gateway refuses to create: two path variables of different names at the same
    level under the same parent (`/{a}/x` beside `/{b}/y`), whatever the methods."""
    named: dict[tuple[str, ...], tuple[str, Route]] = {}
    conflicts = []
    for route in routes:
        segments = route.path.strip("/").split("/")
        for level, segment in enumerate(segments):
            if not segment.startswith("{"):
                continue
            parent = tuple(segments[:level])
            first = named.setdefault(parent, (segment, route))
            if first[0] != segment:
                conflicts.append(
                    f"{route.key} has a conflicting variable on the same hierarchical level "
                    f"as {first[1].key}"
                )
    return conflicts


@dataclass(frozen=True, slots=True)
class S3Notification:
    """An S3 event source of a function: the bucket, event types and key filter."""

    name: str
    bucket: str
    events: tuple[str, ...]
    prefix: str = ""
    suffix: str = ""

    def matches(self, bucket: str, event_name: str, key: str) -> bool:
        """Whether S3 notifies this source of `event_name` (e.g. `ObjectCreated:Put`) on key."""
        if (
            bucket != self.bucket
            or not key.startswith(self.prefix)
            or not key.endswith(self.suffix)
        ):
            return False
        name = f"s3:{event_name}"
        return any(
            name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern
            for pattern in self.events
        )


@dataclass(frozen=True, slots=True)
class Function:
    """A function resource with everything needed to run it in-process."""

    logical_id: str
    code_uri: Path
    handler: str
    environment: dict[str, str]
    name: str = ""
    arn: str = ""
    routes: tuple[Route, ...] = ()
    s3_events: tuple[str, ...] = ()
    notifications: tuple[S3Notification, ...] = ()
    timeout: int = 3
    max_retry_attempts: int = 2
    on_failure: str | None = None

    @property
    def module_path(self) -> Path:
        module, _, _ = self.handler.rpartition(".")
        return self.code_uri / f"{module.replace('.', '/')}.py"

    @property
    def function_name(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass
class Stack:
    """The template resolved against local names: what each `!Ref` and `!Sub` becomes."""

    template: dict[str, Any]
    stack_name: str = "offload-local"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    parameters: dict[str, str] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, spec in self.template.get("Parameters", {}).items():
            self.parameters.setdefault(name, str(spec.get("Default", "")))

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        """The resources of one type that exist, i.e. whose `Condition` (if any) holds."""
        return {
            name: resource
            for name, resource in self.template["Resources"].items()
            if resource["Type"] == kind
            and ("Condition" not in resource or self.condition(resource["Condition"]))
        }

    def resource_name(self, logical_id: str) -> str:
        """The physical name a resource gets: its resolved name property, or stack-logical."""
        if logical_id in self.refs:
            return self.refs[logical_id]
        properties = self.template["Resources"][logical_id].get("Properties", {})
        for key in ("TableName", "BucketName", "QueueName", "FunctionName"):
            if key in properties:
                return str(self.resolve(properties[key]))
        return f"{self.stack_name}-{logical_id}"

    def functions(self) -> list[Function]:
        globals_ = self.template.get("Globals", {}).get("Function", {})
        global_env = globals_.get("Environment", {}).get("Variables", {})
        found = []
        for logical_id, resource in self.resources("AWS::Serverless::Function").items():
            properties = resource["Properties"]
            variables = {**global_env, **properties.get("Environment", {}).get("Variables", {})}
            environment = {}
            for name, value in variables.items():
                resolved = self.resolve(value)
                if resolved is not NO_VALUE:
                    environment[name] = str(resolved)
            routes: list[Route] = []
            s3_events: list[str] = []
            notifications: list[S3Notification] = []
            for event_name, event in properties.get("Events", {}).items():
                if event["Type"] == "HttpApi":
                    routes.append(
                        Route(event["Properties"]["Method"].upper(), event["Properties"]["Path"])
                    )
                elif event["Type"] == "S3":
                    kinds = event["Properties"]["Events"]
                    kinds = [kinds] if isinstance(kinds, str) else kinds
                    s3_events.extend(kinds)
                    notifications.append(self._notification(event_name, event["Properties"]))
            notifications.extend(self._bucket_notifications(logical_id))
            invoke_config = properties.get("EventInvokeConfig", {})
            on_failure = invoke_config.get("DestinationConfig", {}).get("OnFailure", {})
            found.append(
                Function(
                    logical_id=logical_id,
                    code_uri=ROOT / properties["CodeUri"],
                    handler=properties["Handler"],
                    environment=environment,
                    name=self.resource_name(logical_id),
                    arn=(
                        f"arn:aws:lambda:{self.region}:{self.account_id}:function:"
                        f"{self.resource_name(logical_id)}"
                    ),
                    routes=tuple(routes),
                    s3_events=tuple(s3_events),
                    notifications=tuple(notifications),
                    timeout=int(
                        self.resolve(properties.get("Timeout", globals_.get("Timeout", 3)))
                    ),
                    max_retry_attempts=int(invoke_config.get("MaximumRetryAttempts", 2)),
                    on_failure=(
                        str(self.resolve(on_failure["Destination"]))
                        if "Destination" in on_failure
                        else None
                    ),
                )
            )
        return found

    def _notification(self, name: str, properties: dict[str, Any]) -> S3Notification:
        kinds = properties["Events"]
        rules = {
            rule["Name"].lower(): str(self.resolve(rule["Value"]))
            for rule in properties.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        }
        return S3Notification(
            name=name,
            bucket=str(self.resolve(properties["Bucket"])),
            events=tuple([kinds] if isinstance(kinds, str) else kinds),
            prefix=rules.get("prefix", ""),
            suffix=rules.get("suffix", ""),
        )

    def _bucket_notifications(self, logical_id: str) -> list[S3Notification]:
        """What the buckets' own NotificationConfiguration sends to function `logical_id`.

        CloudFormation gives these configurations no id (S3 makes one up); locally each is
        named by its event type, e.g. `ObjectCreated` for `s3:ObjectCreated:*`.
        """
        found = []
        for bucket_id, bucket in self.resources("AWS::S3::Bucket").items():
            configuration = bucket.get("Properties", {}).get("NotificationConfiguration", {})
            for target in configuration.get("LambdaConfigurations", []):
                function = target["Function"]
                if function not in ({"Fn::GetAtt": [logical_id, "Arn"]}, {"Ref": logical_id}):
                    continue
                event = target["Event"]
                name = event.removeprefix("s3:").removesuffix(":*")
                found.append(
                    self._notification(
                        name,
                        {"Bucket": {"Ref": bucket_id}, "Events": event, **target},
                    )
                )
        return found

    def throttling(self) -> tuple[float, int] | None:
        """The HttpApi's default route throttling (rate per second, burst), if declared."""
        for api in self.resources("AWS::Serverless::HttpApi").values():
            settings = api.get("Properties", {}).get("DefaultRouteSettings", {})
            if "ThrottlingRateLimit" in settings and "ThrottlingBurstLimit" in settings:
                rate = float(self.resolve(settings["ThrottlingRateLimit"]))
                return rate, int(self.resolve(settings["ThrottlingBurstLimit"]))
        return None

    def api_cors(self) -> dict[str, Any] | None:
        """The HttpApi's `CorsConfiguration`, resolved, if it declares one."""
        for api in self.resources("AWS::Serverless::HttpApi").values():
            configuration = api.get("Properties", {}).get("CorsConfiguration")
            if isinstance(configuration, Mapping):
                return dict(self.resolve(configuration))
        return None

    def bucket_cors_rules(self) -> dict[str, list[dict[str, Any]]]:
        """Each bucket's physical name and its `CorsConfiguration.CorsRules` (maybe none)."""
        return {
            self.resource_name(logical_id): list(
                self.resolve(
                    resource.get("Properties", {})
                    .get("CorsConfiguration", {})
                    .get("CorsRules", [])
                )
            )
            for logical_id, resource in self.resources("AWS::S3::Bucket").items()
        }

    def resolve(self, value: Any) -> Any:
        """Evaluate the intrinsic functions the template uses, against local names."""
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not NO_VALUE]
        if not isinstance(value, Mapping):
            return value
        if len(value) != 1:
            return {key: self.resolve(item) for key, item in value.items()}
        ((name, argument),) = value.items()
        if name == "Ref":
            return self._ref(argument)
        if name == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            variables = {key: self.resolve(item) for key, item in variables.items()}
            return re.sub(
                r"\$\{([^}]+)\}",
                lambda match: str(variables.get(match[1]) or self._sub_name(match[1])),
                text,
            )
        if name == "Fn::GetAtt":
            logical_id, attribute = argument
            return self._get_att(logical_id, attribute)
        if name == "Fn::If":
            condition, if_true, if_false = argument
            return self.resolve(if_true if self.condition(condition) else if_false)
        if name == "Fn::Join":
            separator, items = argument
            return separator.join(str(item) for item in self.resolve(items))
        if name == "Fn::Split":
            separator, text = argument
            return str(self.resolve(text)).split(separator)
        if name == "Fn::Select":
            index, items = argument
            return self.resolve(items)[int(index)]
        if name in {"Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"}:
            return self._evaluate(value)
        return {name: self.resolve(argument)}

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            value = self.parameters[name]
            spec = self.template.get("Parameters", {}).get(name, {})
            if spec.get("Type") == "CommaDelimitedList":
                return [item.strip() for item in value.split(",")]
            return value
        return self.resource_name(name)

    def _sub_name(self, name: str) -> str:
        if "." in name:
            logical_id, attribute = name.split(".", 1)
            return str(self._get_att(logical_id, attribute))
        return str(self._ref(name))

    def _get_att(self, logical_id: str, attribute: str) -> str:
        name = self.resource_name(logical_id)
        kind = self.template["Resources"][logical_id]["Type"].split("::")[1].lower()
        if attribute == "Arn":
            return f"arn:aws:{kind}:{self.region}:{self.account_id}:{name}"
        return name

    def condition(self, name: str) -> bool:
        """Whether a template condition holds for these parameters."""
        return bool(self._evaluate(self.template.get("Conditions", {})[name]))

    def _evaluate(self, expression: Any) -> Any:
        if isinstance(expression, Mapping) and len(expression) == 1:
            ((name, argument),) = expression.items()
            if name == "Fn::Equals":
                left, right = (self.resolve(item) for item in argument)
                return str(left) == str(right)
            if name == "Fn::Not":
                return not self._evaluate(argument[0])
            if name == "Fn::And":
                return all(self._evaluate(item) for item in argument)
            if name == "Fn::Or":
                return any(self._evaluate(item) for item in argument)
            if name == "Condition":
                return self.condition(argument)
        return self.resolve(expression)

    def table_definition(self, logical_id: str = "Table") -> dict[str, Any]:
        """CreateTable arguments from the table resource (key schema, billing, TTL aside)."""
        properties = self.template["Resources"][logical_id]["Properties"]
        return {
            "TableName": self.resource_name(logical_id),
            "KeySchema": properties["KeySchema"],
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST"),
        }

    def ttl_attribute(self, logical_id: str = "Table") -> str | None:
        spec = self.template["Resources"][logical_id]["Properties"].get("TimeToLiveSpecification")
        return spec["AttributeName"] if spec and spec.get("Enabled") else None
