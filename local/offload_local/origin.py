"""A small origin on loopback: the "API a team already has" behind the demo's origin feed.

`GET /clients/{client_id}/price-list.csv?currency=eur` answers a client's price list, as a
team's export endpoint would: with an ETag and Last-Modified (a conditional request that
matches is a 304), gzip-encoded when asked, and only with the credential header the stack
keeps in SSM. `make run` starts it and gives its URL to the stack as `OriginBaseUrl`.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from offload_local.servers import LOOPBACK, PortInUse

# The credential the local origin takes, kept by the stack in an SSM SecureString.
TOKEN = "Bearer local-origin-token"
CREDENTIAL_PARAMETER = "/offload-local/origin-credential"
PRICE_LIST = re.compile(r"/clients/(?P<client>[a-z0-9][a-z0-9_-]{0,62})/price-list\.csv")
CURRENCIES = {"eur": 1.0, "usd": 1.08, "gbp": 0.86}
PRODUCTS = 2000


@dataclass
class Answer:
    """What the origin sends: status, headers and body; `declared_length` may lie about the
    body's length, `delay` holds the answer back, `drip` sends it slowly, byte by byte."""

    status: int = HTTPStatus.OK
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    declared_length: int | None = None
    delay: float = 0.0
    drip: float = 0.0


def price_list(client: str, currency: str) -> bytes:
    """A client's prices, deterministic: the same client and currency give the same bytes."""
    discount = int(hashlib.sha256(client.encode()).hexdigest()[:2], 16) % 20
    rate = CURRENCIES[currency]
    lines = ["sku,price,currency"]
    for number in range(1, PRODUCTS + 1):
        cents = (number * 7919) % 99_800 + 199
        price = cents * rate * (100 - discount) / 100 / 100
        lines.append(f"SKU-{number:06d},{price:.2f},{currency.upper()}")
    return ("\n".join(lines) + "\n").encode()


class OriginHandler(BaseHTTPRequestHandler):
    """Answers the demo's price lists; `answer` is what a test origin overrides."""

    server: OriginServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.record(self)
        self.send(self.answer())

    def answer(self) -> Answer:
        if self.server.token is not None and self.headers.get("Authorization") != self.server.token:
            return Answer(HTTPStatus.UNAUTHORIZED, b"missing or wrong credential\n")
        url = urlsplit(self.path)
        match = PRICE_LIST.fullmatch(url.path)
        currency = parse_qs(url.query).get("currency", ["eur"])[0]
        if match is None or currency not in CURRENCIES:
            return Answer(HTTPStatus.NOT_FOUND, b"no such price list\n")
        body = price_list(match["client"], currency)
        return self.representation(body, "text/csv")

    def representation(self, body: bytes, content_type: str) -> Answer:
        """`body` as an origin with validators serves it: 304 when the client holds it."""
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        validators = {"ETag": etag, "Last-Modified": self.server.last_modified}
        if self.headers.get("If-None-Match") == etag:
            return Answer(HTTPStatus.NOT_MODIFIED, headers=validators)
        headers = {"Content-Type": content_type, **validators}
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, mtime=0)
            headers["Content-Encoding"] = "gzip"
        return Answer(HTTPStatus.OK, body, headers)

    def send(self, answer: Answer) -> None:
        time.sleep(answer.delay)
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        length = len(answer.body) if answer.declared_length is None else answer.declared_length
        if answer.status != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            if answer.drip:
                for index in range(len(answer.body)):
                    self.wfile.write(answer.body[index : index + 1])
                    self.wfile.flush()
                    time.sleep(answer.drip)
            else:
                self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout): nothing more to say

    def log_message(self, format: str, *args: object) -> None:
        return None  # the stack's log is the user's; the origin's traffic is not news


class OriginServer(ThreadingHTTPServer):
    """The origin on loopback: bound when made, serving once started; it records requests."""

    daemon_threads = True

    def __init__(
        self,
        port: int = 0,
        *,
        token: str | None = TOKEN,
        handler: type[OriginHandler] = OriginHandler,
    ) -> None:
        try:
            super().__init__((LOOPBACK, port), handler)
        except OSError as exc:
            raise PortInUse("origin", port, "pick another: make run ORIGIN_PORT=3090") from exc
        self.token = token
        self.last_modified = formatdate(time.time(), usegmt=True)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._thread = threading.Thread(target=self.serve_forever, name="origin", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server_address[1]}"

    def record(self, request: BaseHTTPRequestHandler) -> None:
        self.requests.append((request.path, {k.lower(): v for k, v in request.headers.items()}))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join()
        self.server_close()
