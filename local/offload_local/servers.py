"""Threaded HTTP servers on loopback, bound up front so a busy port is a clear error."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

LOOPBACK = "127.0.0.1"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class PortInUse(Exception):
    """The port is taken, most likely by another running stack."""

    def __init__(self, what: str, port: int, hint: str) -> None:
        super().__init__(f"{LOOPBACK}:{port} ({what}) is already in use; {hint}")
        self.port = port


class QuietRequestHandler(WSGIRequestHandler):
    """No access log: the emulator's traffic is the stack's own, not the user's."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def _listen(port: int, what: str, hint: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((LOOPBACK, port))
    except OSError as exc:
        sock.close()
        raise PortInUse(what, port, hint) from exc
    sock.listen(socket.SOMAXCONN)
    return sock


class Server:
    """A threaded werkzeug server: bound when constructed, serving once started."""

    def __init__(
        self,
        app: WsgiApp,
        *,
        port: int,
        what: str,
        hint: str,
        request_handler: type[WSGIRequestHandler] = QuietRequestHandler,
    ) -> None:
        # Binding ourselves (werkzeug prints and exits on a busy port) keeps errors ours.
        sock = _listen(port, what, hint)
        try:
            self._server: BaseWSGIServer = make_server(
                LOOPBACK,
                sock.getsockname()[1],
                app,
                threaded=True,
                request_handler=request_handler,
                fd=sock.fileno(),
            )
        finally:
            sock.close()  # the server holds its own duplicate of the descriptor
        self._thread = threading.Thread(target=self._server.serve_forever, name=what, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
