"""The local edge: Varnish in front of the API, configured as template.yaml's distribution.

The configuration is one file, `local/edge/offload.vcl`; only the API's port is written into
a copy of it at start. Where varnishd is missing the stack still serves the API directly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from offload_local.servers import LOOPBACK, PortInUse
from offload_local.template import ROOT

CONFIG = ROOT / "local" / "edge" / "offload.vcl"
INSTALL_HINT = "sudo apt-get install varnish"
VARNISHD = "VARNISHD"  # the varnishd binary, where it is not on PATH or in sbin
# Debian installs varnishd in sbin, which an ordinary user's PATH often lacks.
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin")
_BACKEND_PORT = re.compile(r'(\.port\s*=\s*)"\d+"')
STARTUP_SECONDS = 30.0
STORAGE = "malloc,256m"


class EdgeFailed(RuntimeError):
    """varnishd would not start; the message carries what it said."""


def find(command: str) -> str | None:
    """A Varnish command: $VARNISHD for varnishd if set, else on PATH or in the sbin folders."""
    if command == "varnishd" and (chosen := os.environ.get(VARNISHD)):
        return shutil.which(chosen)
    return shutil.which(command) or shutil.which(command, path=os.pathsep.join(_SBIN))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _check_free(port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            raise PortInUse(
                "edge", port, "pick another with EDGE_PORT, e.g. make run EDGE_PORT=3081"
            ) from exc


class Edge:
    """varnishd in the foreground of a child process, on loopback, with its own work folder."""

    def __init__(self, varnishd: str, *, port: int, backend_port: int) -> None:
        if port:
            _check_free(port)
        self.varnishd = varnishd
        self.port = port or free_port()
        self.backend_port = backend_port
        self.workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        """Start varnishd and wait until it accepts connections (EdgeFailed if it exits)."""
        self.workdir = Path(tempfile.mkdtemp(prefix="offload-edge-"))
        # Started as root, varnishd drops to its own user, which must read the folder.
        self.workdir.chmod(0o755)
        config = self.workdir / CONFIG.name
        config.write_text(_BACKEND_PORT.sub(rf'\g<1>"{self.backend_port}"', CONFIG.read_text()))
        log = self.workdir / "varnishd.log"
        with log.open("wb") as output:
            self._process = subprocess.Popen(
                [
                    self.varnishd,
                    "-F",  # foreground: it stops with the stack
                    "-n", str(self.workdir),
                    "-a", f"{LOOPBACK}:{self.port}",
                    "-f", str(config),
                    "-s", STORAGE,
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _accepts(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                said = log.read_text(errors="replace").strip().splitlines()[-5:]
                self.stop()
                raise EdgeFailed("varnishd did not start: " + " / ".join(said))
            time.sleep(0.05)

    def stats(self) -> dict[str, int]:
        """varnishstat's counters (cache_hit, cache_miss, backend_req, VBE.* bytes, ...)."""
        assert self.workdir is not None, "the edge is not running"
        return edge_stats(self.workdir)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def edge_stats(name: str | Path) -> dict[str, int]:
    """The counters of the Varnish instance whose work folder (`-n`) is `name`."""
    output = subprocess.run(
        [find("varnishstat") or "varnishstat", "-n", str(name), "-1", "-j"],
        check=True,
        capture_output=True,
    ).stdout
    document = json.loads(output)
    counters = document.get("counters", document)
    return {
        counter_name: int(counter["value"])
        for counter_name, counter in counters.items()
        if isinstance(counter, dict) and "value" in counter
    }


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.2):
            return True
    except OSError:
        return False
