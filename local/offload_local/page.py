"""The demo page's own origin: `local/page/` as static files, and where the API is.

A page on another origin than the API is what CORS is about, so the page gets a port of its
own (`PAGE_PORT`, default 3090). `config.json` tells it the stack's public URL (the edge
when it runs); `?api=` on the page's URL overrides that.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from offload_local.template import ROOT

PAGE_DIRECTORY = ROOT / "local" / "page"
_TYPES = {".js": "text/javascript", ".html": "text/html; charset=utf-8"}


class PageApp:
    """WSGI: GET or HEAD of a file in the page's folder, or of `config.json`."""

    def __init__(self, api_url: Callable[[], str], directory: Path = PAGE_DIRECTORY) -> None:
        self.api_url = api_url
        self.directory = directory

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        name = environ.get("PATH_INFO", "/").lstrip("/") or "index.html"
        if environ["REQUEST_METHOD"] not in {"GET", "HEAD"}:
            return self._answer(start_response, "405 Method Not Allowed", "text/plain", b"")
        if name == "config.json":
            body = json.dumps({"api": self.api_url()}).encode()
            return self._answer(start_response, "200 OK", "application/json", body)
        files = {path.name: path for path in self.directory.iterdir() if path.is_file()}
        if name not in files:  # one flat folder: no path ever leaves it
            return self._answer(start_response, "404 Not Found", "text/plain", b"not found")
        path = files[name]
        kind = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "text/plain"
        return self._answer(start_response, "200 OK", kind, path.read_bytes())

    @staticmethod
    def _answer(start_response: Any, status: str, kind: str, body: bytes) -> Iterable[bytes]:
        start_response(
            status,
            [
                ("Content-Type", kind),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-cache"),
            ],
        )
        return [body]
