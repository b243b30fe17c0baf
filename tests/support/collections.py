"""What every collection's answers carry through the local stack, for the HTTP suites."""

from __future__ import annotations

import hashlib
from http import HTTPStatus
from typing import Any

import requests

from tests.support.stack import TTLS, RunningStack

POINTER = (
    f"public, max-age={TTLS['PointerMaxAgeSeconds']}, "
    f"stale-while-revalidate={TTLS['PointerStaleSeconds']}"
)
IMMUTABLE = "public, max-age=31536000, immutable"
REDIRECT = f"public, max-age={TTLS['RedirectMaxAgeSeconds']}"
UNFINISHED = f"public, max-age={TTLS['UnfinishedMaxAgeSeconds']}"


def assert_cacheable(response: requests.Response, status: HTTPStatus, cache_control: str) -> str:
    """Status, Cache-Control and a strong ETag as the design table says; never Vary."""
    assert response.status_code == status, response.text
    assert response.headers["Cache-Control"] == cache_control
    assert "Vary" not in response.headers
    etag = response.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    if status == HTTPStatus.NOT_MODIFIED:
        assert response.content == b""
    else:
        assert etag == f'"{hashlib.sha256(response.content).hexdigest()}"'
    return etag


def revalidate(http: requests.Session, url: str, etag: str, cache_control: str) -> None:
    response = http.get(url, headers={"If-None-Match": etag}, allow_redirects=False, timeout=30)
    assert assert_cacheable(response, HTTPStatus.NOT_MODIFIED, cache_control) == etag


def read_current_snapshot(stack: RunningStack, http: requests.Session, owned: str) -> Any:
    """Read `owned` (e.g. users/42/matches) as a client does: the pointer, the unversioned
    index's 307 to its version, the snapshot; each with its headers, each revalidated."""
    version_url = stack.url(f"/{owned}/version")
    pointer = http.get(version_url, timeout=30)
    revalidate(http, version_url, assert_cacheable(pointer, HTTPStatus.OK, POINTER), POINTER)
    version = pointer.json()["version"]
    index_url = stack.url(f"/{owned}/index")
    redirect = http.get(index_url, allow_redirects=False, timeout=30)
    etag = assert_cacheable(redirect, HTTPStatus.TEMPORARY_REDIRECT, REDIRECT)
    assert redirect.headers["Location"] == f"/{owned}/index?version={version}"
    revalidate(http, index_url, etag, REDIRECT)
    snapshot_url = stack.url(redirect.headers["Location"])
    snapshot = http.get(snapshot_url, timeout=30)
    revalidate(http, snapshot_url, assert_cacheable(snapshot, HTTPStatus.OK, IMMUTABLE), IMMUTABLE)
    return snapshot.json()
