"""Feeds in unit tests: a controllable generator, downloads, the records a run leaves."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from offload.feeds import REGISTRY, Feed, GenerationRequest
from offload.table import CacheEntry


@dataclass
class Probe:
    """A controllable feed generator: counts calls, can block, fail or act mid-generation."""

    calls: int = 0
    fail: Exception | None = None
    gate: threading.Event | None = None
    during: Callable[[], None] | None = None
    started: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def generate(self, request: GenerationRequest) -> bytes:
        with self._lock:
            self.calls += 1
            call = self.calls
        self.started.set()
        if self.during is not None:
            self.during()
        if self.gate is not None:
            self.gate.wait(timeout=10)
        if self.fail is not None:
            raise self.fail
        return json.dumps({"feed": request.feed, "generation": call}).encode()


@contextmanager
def probe_feed(name: str, **options: Any) -> Iterator[Probe]:
    """A feed `name` (JSON only, 1 h max age, 5 s generation timeout, and `options`) backed
    by a fresh Probe, registered while the block runs."""
    spy = Probe()
    declared: dict[str, Any] = {
        "formats": {"json": "application/json"},
        "max_age_seconds": 3600,
        "generation_timeout_seconds": 5.0,
    }
    REGISTRY.register(Feed(name=name, generate=spy.generate, **(declared | options)))
    try:
        yield spy
    finally:
        if spy.gate is not None:
            spy.gate.set()
        REGISTRY.unregister(name)


def download(url: str) -> bytes:
    """GET a signed URL (moto answers it in-process) and return the bytes."""
    response = requests.get(url, timeout=10)
    assert response.status_code == HTTPStatus.OK, response.text
    return response.content


@dataclass(frozen=True)
class CloudFront:
    """Signing as a stack with a CDN key does it; the key and the domain are in SSM."""

    key_id: str
    domain: str
    private_key: rsa.RSAPrivateKey
    key_parameter: str
    domain_parameter: str


def age_entries(*, by: float) -> None:
    """Make every recorded file look `by` seconds older than it is."""
    for entry in CacheEntry.scan(CacheEntry.sk == CacheEntry.SORT):
        entry.update(actions=[CacheEntry.generated_at.set(float(entry.generated_at) - by)])


def canned_policy(url: str) -> tuple[bytes, bytes]:
    """A CloudFront signed URL's canned policy, as CloudFront rebuilds it from the URL's own
    resource and expiry, and the signature the URL carries over it."""
    query = parse_qs(urlsplit(url).query)
    policy = json.dumps(
        {
            "Statement": [
                {
                    "Resource": url.split("?")[0],
                    "Condition": {"DateLessThan": {"AWS:EpochTime": int(query["Expires"][0])}},
                }
            ]
        },
        separators=(",", ":"),
    ).encode()
    signature = base64.b64decode(
        query["Signature"][0].replace("-", "+").replace("_", "=").replace("~", "/")
    )
    return policy, signature
