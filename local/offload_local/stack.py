"""The whole local stack: emulator, S3 events, HTTP front, environment and demo data.

The data comes from the plugin modules OFFLOAD_APP names: each that defines `seed(settings)`
(the local stack's hook; the demo's writes its products and matches) is called once the
table and bucket exist, after the demo keys are written.
"""

from __future__ import annotations

import importlib
import os
import shlex
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import boto3

from offload import api_keys
from offload_local.cors import ApiCors
from offload_local.edge import INSTALL_HINT, Edge, find
from offload_local.emulator import Emulator
from offload_local.gateway import Gateway, GatewayRequestHandler
from offload_local.invocations import AsyncInvoker, LambdaApi
from offload_local.lambdas import Containers
from offload_local.origin import CREDENTIAL_PARAMETER, TOKEN, OriginServer
from offload_local.page import PageApp
from offload_local.s3events import Notifications
from offload_local.servers import Server
from offload_local.template import TEMPLATE_PATH, Stack, load

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
# Variables that would send AWS calls elsewhere, or to a real account, if inherited.
_FOREIGN = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


@dataclass(frozen=True, slots=True)
class DemoKey:
    """A local-only API key the stack seeds."""

    key: str
    client_id: str
    scope: str
    hourly_limit: int


DEMO_KEYS = (
    DemoKey("demo-feeds-key", "demo", "feeds", 1000),
    DemoKey("demo-admin-key", "admin", "admin", 1000),
)


@dataclass
class LocalStack:
    """Offload against moto on loopback: `start()` it, use `api_url`, `stop()` it."""

    port: int = 3000
    emulator_port: int = 0
    # None: no edge; 0: a free port.
    edge_port: int | None = None
    # None: no demo page; 0: a free port.
    page_port: int | None = None
    template: Path = TEMPLATE_PATH
    seed: bool = True
    # Template parameters, as `sam deploy --parameter-overrides` gives them. Without
    # OriginBaseUrl the stack starts its own origin (on `origin_port`, 0: a free one).
    parameters: dict[str, str] = field(default_factory=dict)
    origin_port: int = 0
    stack: Stack = field(init=False)
    environment: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        template = load(self.template)
        unknown = sorted(set(self.parameters) - set(template.get("Parameters", {})))
        if unknown:
            raise ValueError(f"the template has no parameter {', '.join(unknown)}")
        self.origin: OriginServer | None = None
        given_origin = bool(self.parameters.get("OriginBaseUrl"))
        if not given_origin:
            # Bound now, so its URL is the parameter the functions' environment is made from.
            self.origin = OriginServer(self.origin_port)
            self.parameters["OriginBaseUrl"] = self.origin.url
        credential = ("OriginCredentialParameter", "OriginCredentialSecret")
        if not any(self.parameters.get(name) for name in credential):
            self.parameters["OriginCredentialParameter"] = CREDENTIAL_PARAMETER
        self.stack = Stack(template, parameters=dict(self.parameters))
        functions = self.stack.functions()
        self._functions = functions
        self._containers = {f.logical_id: Containers(f) for f in functions}
        self._invoker = AsyncInvoker(sqs=lambda: boto3.client("sqs"))
        self._notifications = Notifications(
            functions, self._containers, region=self.stack.region, invoker=self._invoker
        )
        self._gateway = Gateway(
            functions,
            self._containers,
            account_id=self.stack.account_id,
            throttling=self.stack.throttling(),
            cors=ApiCors.of(cors) if (cors := self.stack.api_cors()) is not None else None,
        )
        self._servers: list[Server | Emulator] = []
        self.edge: Edge | None = None
        self.edge_missing = ""
        self.page: Server | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self._api.port}"

    @property
    def public_url(self) -> str:
        """Where clients go: the edge when it runs, as they would use the CDN's URL."""
        return self.edge.url if self.edge is not None else self.api_url

    def start(self) -> None:
        """Bind both ports (PortInUse if taken), then serve, create resources and seed."""
        # The front binds first: a second `make run` fails fast, before any other work.
        self._api = Server(
            self._gateway,
            port=self.port,
            what="API",
            hint="is `make run` already running? Stop it, or pick another: make run PORT=3001",
            request_handler=GatewayRequestHandler,
        )
        self._servers.append(self._api)
        if self.page_port is not None:
            self.page = Server(
                PageApp(lambda: self.public_url),
                port=self.page_port,
                what="demo page",
                hint="pick another with PAGE_PORT, e.g. make run PAGE_PORT=3091",
            )
            self._servers.append(self.page)
        if self.edge_port is not None:
            self._prepare_edge(self.edge_port)
        self.emulator = Emulator(
            self.stack,
            port=self.emulator_port,
            on_change=self._notifications.publish,
            lambda_api=lambda app: LambdaApi(app, self._functions, self._containers, self._invoker),
        )
        self._servers.append(self.emulator)
        self.environment = self._environment()
        # The layer reads its settings from the process environment, once, like a container.
        for name in _FOREIGN:
            os.environ.pop(name, None)
        for name in [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL_")]:
            os.environ.pop(name)
        os.environ.update(self.environment)
        self.emulator.start()
        self.emulator.create_resources(boto3.Session(region_name=self.stack.region))
        if self.parameters.get("OriginCredentialParameter") == CREDENTIAL_PARAMETER:
            boto3.client("ssm", region_name=self.stack.region).put_parameter(
                Name=CREDENTIAL_PARAMETER, Value=TOKEN, Type="SecureString", Overwrite=True
            )
        if self.origin is not None:
            self.origin.start()
            self.environment["OFFLOAD_ORIGIN_URL"] = self.origin.url
        if self.seed:
            seed_local_data()
        self._api.start()
        if self.page is not None:
            self.page.start()
            self.environment["OFFLOAD_PAGE_URL"] = self.page.url
        if self.edge is not None:
            self.edge.start()
            self.environment["OFFLOAD_EDGE_URL"] = self.edge.url
            self.environment["OFFLOAD_EDGE_NAME"] = str(self.edge.workdir)

    def feeds(self) -> list[str]:
        """The names of the feeds the functions serve: those the plugins register."""
        from offload.config import get_settings
        from offload.plugins import load_plugins

        return [feed.name for feed in load_plugins(get_settings().app_modules).feeds]

    def _prepare_edge(self, port: int) -> None:
        """The edge if varnishd is installed (its port checked now, to fail fast), else why not."""
        varnishd = find("varnishd")
        if varnishd is None:
            self.edge_missing = (
                f"no edge on port {port or '(free)'}: varnishd is not installed "
                f"(`{INSTALL_HINT}`); serving the API directly"
            )
            return
        self.edge = Edge(varnishd, port=port, backend_port=self._api.port)

    def stop(self) -> None:
        """Stop the edge and serving, finish queued S3 events, stop the emulator."""
        if self.edge is not None:
            self.edge.stop()
            self.edge = None
        if self._servers:
            self._servers[0].stop()
        self._invoker.close()
        for server in self._servers[1:]:
            server.stop()
        self._servers.clear()
        if self.origin is not None:
            self.origin.stop()
            self.origin = None

    def _environment(self) -> dict[str, str]:
        """What the functions and any AWS tool need to use this stack."""
        functions = self.stack.functions()
        shared = dict(functions[0].environment) if functions else {}
        for function in functions[1:]:
            # One process hosts every function: only settings they all share can be set.
            shared = {k: v for k, v in shared.items() if function.environment.get(k) == v}
        return {
            **shared,
            "POWERTOOLS_SERVICE_NAME": "offload-local",
            # No X-Ray daemon here.
            "POWERTOOLS_TRACE_DISABLED": "true",
            "AWS_ENDPOINT_URL": self.emulator.endpoint_url,
            "AWS_DEFAULT_REGION": self.stack.region,
            "AWS_REGION": self.stack.region,
            **FAKE_CREDENTIALS,
            "NO_PROXY": _no_proxy(),
            "no_proxy": _no_proxy(),
            "OFFLOAD_API_URL": self.api_url,
        }

    def env_file_text(self) -> str:
        """`export` lines that point the `offload` command and AWS tools at this stack."""
        names = (
            "AWS_ENDPOINT_URL",
            "AWS_DEFAULT_REGION",
            "AWS_REGION",
            *FAKE_CREDENTIALS,
            "TABLE_NAME",
            "BUCKET_NAME",
            # So that `offload feeds list` and `offload invalidate` know the plugins' names.
            "OFFLOAD_APP",
            "OFFLOAD_API_URL",
            "OFFLOAD_EDGE_URL",
            "OFFLOAD_EDGE_NAME",
            "OFFLOAD_ORIGIN_URL",
            "OFFLOAD_PAGE_URL",
        )
        # The `offload` command the banner suggests lives beside the interpreter serving this.
        scripts = shlex.quote(sysconfig.get_path("scripts"))
        lines = [
            "# The Offload local stack (make run); valid while it runs.",
            f"unset {' '.join(_FOREIGN[:4])}",
            f'export PATH={scripts}:"$PATH"',
            *(
                f"export {name}={shlex.quote(self.environment[name])}"
                for name in names
                if name in self.environment
            ),
        ]
        return "\n".join(lines) + "\n"

    def write_env_file(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_text(self.env_file_text())
        partial.replace(path)  # readers never see half a file


def seed_demo_keys() -> None:
    """The local-only keys that the stack prints and the events/ files carry."""

    for demo in DEMO_KEYS:
        api_keys.create_key(
            demo.client_id, scopes={demo.scope}, hourly_limit=demo.hourly_limit, key=demo.key
        )


SEED_HOOK = "seed"


def seed_local_data() -> None:
    """The demo keys, then each plugin's data (its `seed(settings)`, if it has one)."""
    from offload.observability import logger
    from offload.plugins import load_plugins
    from offload.runtime import get_runtime

    runtime = get_runtime()  # binds the models to the table, as a container's cold start does
    # Registered first, as in a function: a plugin's models are bound before it seeds them.
    modules = load_plugins(runtime.settings.app_modules).modules
    level = logger.log_level
    logger.setLevel("WARNING")  # a log line per seeded version would bury the banner
    try:
        seed_demo_keys()
        for name in modules:
            seed = getattr(importlib.import_module(name), SEED_HOOK, None)
            if callable(seed):
                seed(runtime.settings)
    finally:
        logger.setLevel(level)


def _no_proxy() -> str:
    """NO_PROXY extended with loopback, so a configured proxy never sees local calls."""
    current = os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""
    hosts = [host for host in current.split(",") if host]
    return ",".join([*hosts, *(h for h in ("127.0.0.1", "localhost") if h not in hosts)])
