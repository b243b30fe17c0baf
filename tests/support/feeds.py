"""Feeds in unit tests: a controllable generator, downloads, the records a run leaves."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from offload.feeds import GenerationRequest
from offload.models import CacheEntry
from tests.support import stored_generations


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


def generated_keys() -> list[str]:
    return stored_generations()


def age_entries(*, by: float) -> None:
    """Make every recorded file look `by` seconds older than it is."""
    for entry in CacheEntry.scan(CacheEntry.sk == CacheEntry.SORT):
        entry.update(actions=[CacheEntry.generated_at.set(float(entry.generated_at) - by)])
