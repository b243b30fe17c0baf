"""A forward HTTP proxy on loopback that misbehaves on purpose, for download clients.

Clients reach it through `HTTP_PROXY`. Requests for generated files (`/files/` in the path)
can be cut after half their body once (`cut_once`), or have one byte changed (`corrupt`);
everything else passes through untouched. It records the `Range` each file request sent.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding"}


@dataclass
class Faults:
    cut_once: bool = False
    corrupt: bool = False
    ranges: list[str | None] = field(default_factory=list)


class FlakyProxy:
    """`with FlakyProxy() as proxy:` ... `proxy.url`, `proxy.faults`."""

    def __init__(self) -> None:
        self.faults = Faults()
        faults = self.faults

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._forward()

            def do_HEAD(self) -> None:
                self._forward()

            def _forward(self) -> None:
                target = urlsplit(self.path)
                path = target.path + (f"?{target.query}" if target.query else "")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                upstream.request(self.command, path, headers=headers)
                answer = upstream.getresponse()
                body = answer.read()
                upstream.close()
                is_file = "/files/" in target.path and self.command == "GET"
                if is_file:
                    faults.ranges.append(self.headers.get("Range"))
                cut = is_file and faults.cut_once and answer.status == 200 and len(body) > 2
                if cut:
                    faults.cut_once = False
                if is_file and faults.corrupt and answer.status in (200, 206) and body:
                    body = bytes([body[0] ^ 0x01]) + body[1:]
                self.send_response(answer.status, answer.reason)
                for name, value in answer.getheaders():
                    if name.lower() not in _HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                if cut:
                    self.send_header("Connection", "close")
                self.end_headers()
                if self.command == "HEAD":
                    return
                if cut:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FlakyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
