"""The local stack as the integration and e2e suites run it: `python -m offload_local` in a
child process on free loopback ports, exactly as `make run` starts it, so its emulator state
and environment stay apart from the unit tests' in-process moto. Tests reach it over HTTP,
and through `stack_aws` with boto3 and the layer's models pointed at its emulator.

Its fixtures reach every suite through `pytest_plugins` in tests/conftest.py.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import pytest
import requests

from offload import api_keys, auth
from offload.feeds.outcome import Outcome
from offload.runtime import get_runtime
from offload_local.origin import TOKEN
from offload_local.stack import DEMO_KEYS
from tests.support import ROOT, STACK, cache_status, reset_container_state
from tests.support.origin import ScriptedOrigin

# Every API key a run used, and the origin's credential: the stack's log holds none of them.
USED_KEYS: set[str] = {demo.key for demo in DEMO_KEYS} | {TOKEN}


STARTUP_SECONDS = 90


_clients = itertools.count(1)


# Short collection TTLs, so that edge tests can watch them run out in seconds.
TTLS = {
    "PointerMaxAgeSeconds": 2,
    "PointerStaleSeconds": 2,
    "RedirectMaxAgeSeconds": 2,
    "UnfinishedMaxAgeSeconds": 2,
}


@dataclass(frozen=True)
class RunningStack:
    """A started local stack: where its API is and the environment that reaches its emulator."""

    base_url: str
    environment: dict[str, str]
    env_file: Path
    log: Path
    pid: int

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def edge_url(self) -> str | None:
        """The local edge (Varnish as the CDN) in front of the API, where varnishd runs."""
        return self.environment.get("OFFLOAD_EDGE_URL")

    @property
    def page_url(self) -> str:
        """The demo page, on an origin of its own."""
        return self.environment["OFFLOAD_PAGE_URL"]

    @property
    def endpoint_url(self) -> str:
        return self.environment["AWS_ENDPOINT_URL"]


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of `export NAME=value` lines, as a shell that sources the file sees them
    (`PATH=...:"$PATH"` extends this process's PATH; no other value holds a `$`)."""
    environment = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export":
            name, _, value = words[1].partition("=")
            environment[name] = os.path.expandvars(value)
    return environment


def start_stack(
    directory: Path, origin: ScriptedOrigin
) -> tuple[subprocess.Popen[bytes], RunningStack]:
    """Start `python -m offload_local` on free ports, its origin feeds fetching from `origin`;
    wait until it has written its env file."""
    env_file, log = directory / "local.env", directory / "stack.log"
    environment = {
        **{name: value for name, value in os.environ.items() if name != "PORT"},
        "PYTHONUNBUFFERED": "1",
        "EMULATOR_PORT": "0",
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "offload_local",
                "--port",
                "0",
                "--edge-port",
                "0",
                "--page-port",
                "0",
                "--env-file",
                str(env_file),
                "--parameter-overrides",
                *(f"{name}={value}" for name, value in TTLS.items()),
                f"OriginBaseUrl={origin.url}",
            ],
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + STARTUP_SECONDS
    # The stack writes the file (atomically) only once it serves and is seeded.
    while not env_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_stack(process)
            pytest.fail(f"the local stack did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    values = read_env_file(env_file)
    return process, RunningStack(values["OFFLOAD_API_URL"], values, env_file, log, process.pid)


def stop_stack(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as Ctrl-C would; SIGKILL only if it does not stop in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


BANNER = r"\nOffload is running:\n.*?\nCtrl-C stops everything\.\n"


def assert_no_key_logged(log: Path, keys: set[str]) -> None:
    """The stack's whole log (every function's, the gateway's) names no key it was sent.

    The start-up banner is left out: it prints the local demo keys on purpose.
    """
    text = re.sub(BANNER, "", log.read_text(errors="replace"), flags=re.DOTALL)
    leaked = sorted(key for key in keys if key in text)
    assert not leaked, f"API keys in the local stack's log {log}: {leaked}"


def create_stack_key(
    stack: RunningStack, *, hourly_limit: int = 1000, scope: str = auth.SCOPE_FEEDS
) -> tuple[str, str]:
    """A key for a fresh client in the stack's table; returns (key, client_id)."""
    client_id = f"it-{os.getpid()}-{next(_clients)}"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in stack.environment.items():
            patch.setenv(name, value)
        reset_container_state()
        get_runtime()  # binds the models to the stack's table
        key = api_keys.create_key(client_id, scopes={scope}, hourly_limit=hourly_limit)
    reset_container_state()
    USED_KEYS.add(key)
    return key, client_id


def wait_for_hit(
    http: requests.Session, url: str, key: str, *, timeout: float = 15.0
) -> requests.Response:
    """Ask until the answer is a 307 HIT: the recorder has handled the upload's S3 event."""
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(url, headers={"X-Api-Key": key}, allow_redirects=False, timeout=30)
        hit = cache_status(response.headers) == Outcome.HIT
        if (response.status_code == HTTPStatus.TEMPORARY_REDIRECT and hit) or (
            time.monotonic() > deadline
        ):
            return response
        time.sleep(0.1)


SIGNED_URL_TTL = STACK.functions()[0].environment["SIGNED_URL_TTL_SECONDS"]


class _Shared:
    """One stack per test process, shared by the integration and e2e suites."""

    process: subprocess.Popen[bytes] | None = None
    stack: RunningStack | None = None
    # The origin the stack's origin feeds fetch from: the demo's, scripted per client by tests.
    origin: ScriptedOrigin | None = None
    users = 0


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The running local stack (API base URL, emulator environment)."""
    if _Shared.users == 0:
        _Shared.origin = ScriptedOrigin()
        _Shared.origin.start()
        _Shared.process, _Shared.stack = start_stack(
            tmp_path_factory.mktemp("local-stack"), _Shared.origin
        )
    _Shared.users += 1
    assert _Shared.stack is not None
    try:
        yield _Shared.stack
    finally:
        _Shared.users -= 1
        if _Shared.users == 0 and _Shared.process is not None:
            stop_stack(_Shared.process)
            if _Shared.origin is not None:
                _Shared.origin.stop()
                _Shared.origin = None
            if _Shared.stack is not None:
                assert_no_key_logged(_Shared.stack.log, USED_KEYS)


@pytest.fixture
def stack_origin(local_stack: RunningStack) -> ScriptedOrigin:
    """The origin the running stack's origin feeds fetch from; tests script it per client."""
    assert _Shared.origin is not None
    return _Shared.origin


@pytest.fixture
def stack_aws(
    local_stack: RunningStack, aws_environment: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningStack]:
    """This process's AWS SDKs and the layer's models pointed at the stack's emulator."""
    for name, value in local_stack.environment.items():
        monkeypatch.setenv(name, value)
    reset_container_state()
    get_runtime()  # binds the models to the stack's table
    yield local_stack
    reset_container_state()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A client that never uses a configured proxy (everything here is loopback)."""
    with requests.Session() as session:
        session.trust_env = False
        yield session


@pytest.fixture
def make_key(stack_aws: RunningStack) -> Callable[..., tuple[str, str]]:
    """Create an API key in the stack for a fresh client; returns (key, client_id)."""

    def make_key(*, hourly_limit: int = 1000, scope: str = auth.SCOPE_FEEDS) -> tuple[str, str]:
        return create_stack_key(stack_aws, hourly_limit=hourly_limit, scope=scope)

    return make_key
