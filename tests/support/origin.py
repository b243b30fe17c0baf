"""Origins the tests control: a fake urllib3 transport (unit) and a loopback server (stack)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import urllib3

from offload.feeds import REGISTRY, Feed, Parameter
from offload.feeds.origin import origin_feed
from offload_local.origin import Answer, OriginHandler, OriginServer

PATH = "/clients/{client_id}/prices.{format}"
# Where unit tests' fake origin is.
BASE_URL = "https://api.example.test/v1"
# What it answers unless a test says otherwise.
CSV = b"sku,price,currency\nSKU-000001,12.50,EUR\nSKU-000002,7.25,EUR\n"


@dataclass
class Sent:
    """One request the origin received."""

    url: str
    headers: dict[str, str]


@dataclass
class FakeOrigin:
    """Answers the origin client's requests with urllib3 responses over scripted bytes, as
    urllib3's PoolManager.request would; the last answer repeats. `gate` holds answers back
    until it is set; `error` is raised instead of answering."""

    answers: list[Answer] = field(default_factory=lambda: [Answer(body=b"sku,price\n")])
    sent: list[Sent] = field(default_factory=list)
    gate: threading.Event | None = None
    error: Exception | None = None

    def answer(self, *answers: Answer) -> None:
        self.answers = list(answers)

    def request(self, method: str, url: str, *, headers: dict[str, str], **_: Any) -> Any:
        assert method == "GET"
        self.sent.append(Sent(url, dict(headers)))
        if self.gate is not None:
            self.gate.wait(timeout=10)
        if self.error is not None:
            raise self.error
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        length = len(answer.body) if answer.declared_length is None else answer.declared_length
        headers = dict(answer.headers)
        if answer.status != 304:
            headers["Content-Length"] = str(length)
        return urllib3.HTTPResponse(
            body=io.BytesIO(answer.body),
            headers=headers,
            status=answer.status,
            preload_content=False,
            decode_content=False,
            enforce_content_length=True,
        )


@contextmanager
def prices_feed(name: str = "prices", **options: Any) -> Iterator[Feed]:
    """An origin feed `name` (CSV, per client, `currency` parameter) registered while the
    block runs."""
    declared: dict[str, Any] = {
        "formats": {"csv": "text/csv"},
        "url": PATH,
        "parameters": (Parameter("currency"),),
        "max_age_seconds": 3600,
        "generation_timeout_seconds": 5.0,
    }
    feed = origin_feed(name, **(declared | options))
    REGISTRY.register(feed)
    try:
        yield feed
    finally:
        REGISTRY.unregister(name)


class ScriptedHandler(OriginHandler):
    """The demo origin, except for clients a test scripted: those get the test's answers."""

    server: ScriptedOrigin

    def answer(self) -> Answer:
        client = self.path.split("/")[2] if self.path.startswith("/clients/") else ""
        scripted = self.server.scripts.get(client)
        if scripted is None:
            return super().answer()
        if callable(scripted):
            return scripted(self)
        return scripted


class ScriptedOrigin(OriginServer):
    """A loopback origin whose answers per client id the test sets with `script`."""

    def __init__(self) -> None:
        super().__init__(0, handler=ScriptedHandler)
        self.scripts: dict[str, Any] = {}

    def script(self, client_id: str, answer: Any) -> None:
        """`answer`: an Answer, or a function of the request handler returning one."""
        self.scripts[client_id] = answer

    def received(self, client_id: str) -> list[dict[str, str]]:
        """The headers of each request for `client_id`'s files, in order."""
        return [headers for path, headers in self.requests if f"/clients/{client_id}/" in path]
