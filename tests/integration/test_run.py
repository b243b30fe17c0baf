"""What `make run` promises: the env file works, a busy port is one clear line, Ctrl-C stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from offload_local.edge import VARNISHD
from tests.support import ROOT
from tests.support.stack import RunningStack, assert_no_key_logged, read_env_file

BIN = Path(sys.executable).parent
STACK_ARGUMENTS = (BIN / "offload-local", "--port", "0", "--edge-port", "0", "--no-seed")


def shell(command: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command as a user's shell would, with the project's scripts on PATH."""
    environment = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    # Not the suite's own make (`make test`): a user's make is the outermost one.
    for name in ("PORT", "MAKELEVEL", "MAKEFLAGS", "MFLAGS"):
        environment.pop(name, None)
    return subprocess.run(
        ["bash", "-c", command],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        **kwargs,  # type: ignore[arg-type]
    )


def started(env_file: Path, **options: Any) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """`offload-local` on free ports, once it has written its env file; and that file."""
    process = subprocess.Popen(
        [*STACK_ARGUMENTS, "--env-file", env_file], stderr=subprocess.PIPE, text=True, **options
    )
    deadline = time.monotonic() + 60
    while not env_file.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return process, read_env_file(env_file)


def test_sourced_env_file_points_the_offload_command_at_the_stack(local_stack, http):
    # GIVEN a shell that sourced the env file (over whatever AWS settings it had)
    source = f"source {local_stack.env_file}"

    # WHEN the offload command creates a key there
    created = shell(f"{source} && offload keys create --client acme --hourly-limit 5")
    assert created.returncode == 0, created.stderr
    key = next(line.split()[1] for line in created.stdout.splitlines() if line.startswith("key:"))

    # THEN the running stack accepts it, with its limit, and lists it beside the demo keys
    answer = http.get(
        local_stack.url("/feeds/catalog.json?category=toys"),
        headers={"X-Api-Key": key},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code in {HTTPStatus.OK, HTTPStatus.TEMPORARY_REDIRECT}
    assert answer.headers["RateLimit-Limit"] == "5"
    listed = shell(f"{source} && offload keys list")
    assert listed.returncode == 0, listed.stderr
    assert {"demo", "admin", "acme"} <= {line.split()[0] for line in listed.stdout.splitlines()}


def test_sourced_env_file_alone_finds_the_offload_command(local_stack: RunningStack):
    # GIVEN a new terminal: the project's virtualenv is not on PATH
    bare = {**os.environ, "PATH": "/usr/bin:/bin"}

    # WHEN it sources the env file and runs the banner's command
    result = subprocess.run(
        ["bash", "-c", f"source {local_stack.env_file} && offload keys list"],
        env=bare,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )

    # THEN the command is found and talks to the running stack
    assert result.returncode == 0, result.stderr
    assert "demo" in {line.split()[0] for line in result.stdout.splitlines()}


def test_env_file_has_the_stack_settings(local_stack: RunningStack):
    values = read_env_file(local_stack.env_file)
    assert urlsplit(values["AWS_ENDPOINT_URL"]).hostname == "127.0.0.1"
    assert values["AWS_DEFAULT_REGION"] and values["AWS_ACCESS_KEY_ID"]
    assert values["AWS_SECRET_ACCESS_KEY"]
    assert values["TABLE_NAME"] == "offload-local-offload"
    assert values["BUCKET_NAME"] == "offload-local-feeds-123456789012"


def test_without_varnish_the_stack_says_how_to_install_it_and_serves_the_api(tmp_path):
    # GIVEN a machine where varnishd cannot be found
    environment = {**os.environ, VARNISHD: str(tmp_path / "no-varnishd")}
    process, values = started(tmp_path / "local.env", stdout=subprocess.PIPE, env=environment)
    process.send_signal(signal.SIGINT)
    output, errors = process.communicate(timeout=30)
    # THEN it served the API alone and said in one line how to get the edge
    assert "OFFLOAD_EDGE_URL" not in values and values["OFFLOAD_API_URL"] in output
    missing = [line for line in errors.splitlines() if "varnish" in line]
    assert len(missing) == 1 and "apt-get install varnish" in missing[0]


def test_busy_port_is_one_clear_line_and_exit_code_1(local_stack: RunningStack, tmp_path):
    port = urlsplit(local_stack.base_url).port
    result = shell(f"offload-local --port {port} --env-file {tmp_path / 'local.env'}")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert f"127.0.0.1:{port}" in result.stderr and "already in use" in result.stderr
    assert not (tmp_path / "local.env").exists()


def test_make_run_with_its_port_taken_adds_only_makes_own_line(local_stack: RunningStack):
    port = urlsplit(local_stack.base_url).port
    result = shell(f"make --no-print-directory run PORT={port} EDGE_PORT=0")
    # make reports any failed recipe with a line of its own and exits 2, whatever the recipe
    ours, makes = result.stderr.splitlines()
    assert "already in use" in ours and "Traceback" not in result.stderr
    assert makes.startswith("make: *** ") and makes.endswith("Error 1")
    assert result.returncode == 2


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PORT", "abc"), ("PORT", "99999"), ("PORT", "-1"), ("EDGE_PORT", "70000")],
)
def test_a_port_that_is_not_one_is_one_line_without_a_traceback(variable, value, tmp_path):
    result = shell(f"{variable}={value} offload-local --env-file {tmp_path / 'local.env'}")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert f"'{value}' is not a port" in result.stderr and f"${variable}" in result.stderr
    assert not (tmp_path / "local.env").exists()


def test_ctrl_c_stops_everything(tmp_path: Path):
    # GIVEN a running stack
    env_file = tmp_path / "local.env"
    process, values = started(env_file, stdout=subprocess.DEVNULL)

    # WHEN it gets Ctrl-C
    process.send_signal(signal.SIGINT)

    # THEN it exits cleanly, every port is closed (the edge's too) and the env file is gone
    _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
    assert "Traceback" not in errors
    urls = [values["OFFLOAD_API_URL"], values["AWS_ENDPOINT_URL"]]
    urls += [values[name] for name in ("OFFLOAD_EDGE_URL", "OFFLOAD_ORIGIN_URL") if name in values]
    for url in urls:
        port = urlsplit(url).port
        assert port is not None
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0
    assert not env_file.exists()


def test_the_log_check_finds_a_leaked_key(tmp_path: Path):
    # The session's last check (every key the run used, against the stack's whole log)
    log = tmp_path / "stack.log"
    banner = "\nOffload is running:\n  demo-feeds-key  client demo\nCtrl-C stops everything.\n"
    log.write_text(banner + '{"message": "request", "path": "/feeds/catalog.json"}\n')
    assert_no_key_logged(log, {"demo-feeds-key"})
    log.write_text('{"message": "request", "query": "key=demo-feeds-key"}\n')
    with pytest.raises(AssertionError, match="demo-feeds-key"):
        assert_no_key_logged(log, {"demo-feeds-key"})
