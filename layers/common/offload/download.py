"""`offload download`: fetch a feed file as a script should, and prove it arrived whole.

Asks for a link (never the inline body, which carries no digest), or follows a 307; waits
out 202 and 429 (and 503) by their `Retry-After`; downloads to `<file>.part`, resuming with
`Range` (and `If-Range`, so a changed file starts over) after a cut; checks the size and
the SHA-256 announced in the link or in `Repr-Digest`. A mismatch deletes the partial file.
Standard library only, so it runs wherever the layer does.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

from offload.feeds.delivery import LINK_MEDIA_TYPE

CHUNK = 256 * 1024
# How often a cut download resumes before giving up.
MAX_RESUMES = 10
RETRIED = {202, 429, 503}
_DIGEST = re.compile(r"sha-256=:([A-Za-z0-9+/=]+):")


class DownloadError(Exception):
    """The file could not be fetched, or did not arrive as announced."""


@dataclass(frozen=True, slots=True)
class Target:
    """What the API said to fetch: the URL, and what its bytes must be."""

    url: str
    sha256: bytes | None
    size: int | None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 307 is read here (its Repr-Digest), not followed blindly."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _sha256_of(digest: str | None) -> bytes | None:
    match = _DIGEST.search(digest or "")
    return base64.b64decode(match[1]) if match else None


@dataclass
class Downloader:
    """Downloads `/feeds/{file}` from `base_url` with `key`."""

    base_url: str
    key: str
    sleep: Callable[[float], None] = time.sleep
    max_wait: float = 900.0
    timeout: float = 60.0
    report: Callable[[str], None] = lambda line: None

    def __post_init__(self) -> None:
        self._opener = urllib.request.build_opener(_NoRedirects)

    def download(self, file: str, destination: Path) -> Path:
        """Fetch `file` (e.g. `catalog.json`) to `destination`, verified; DownloadError else."""
        target = self.target(file)
        partial = destination.with_name(destination.name + ".part")
        partial.unlink(missing_ok=True)
        try:
            self._fetch(file, target, partial)
            self._verify(target, partial)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(destination)
        return destination

    def target(self, file: str) -> Target:
        """Ask the API until it names a URL; wait out 202, 429 and 503."""
        waited = 0.0
        url = f"{self.base_url.rstrip('/')}/feeds/{file}"
        headers = {
            "X-Api-Key": self.key,
            "Accept": LINK_MEDIA_TYPE,
            # The plain copy: what is written to disk is what the digest names.
            "Accept-Encoding": "identity",
        }
        while True:
            status, answer_headers, body = self._request(url, headers)
            if status == 200 and answer_headers.get("Content-Type", "").startswith(
                LINK_MEDIA_TYPE
            ):
                link = json.loads(body)
                return Target(link["url"], _sha256_of(link.get("digest")), link.get("size"))
            if status == 307:
                return Target(
                    answer_headers["Location"],
                    _sha256_of(answer_headers.get("Repr-Digest")),
                    None,
                )
            if status in RETRIED:
                delay = float(answer_headers.get("Retry-After") or 1)
                if waited + delay > self.max_wait:
                    raise DownloadError(f"still {status} after waiting {waited:.0f} s")
                self.report(f"{status}: waiting {delay:.0f} s as Retry-After says")
                self.sleep(delay)
                waited += delay
                continue
            raise DownloadError(_problem(status, body))

    def _request(
        self, url: str, headers: Mapping[str, str]
    ) -> tuple[int, Message, bytes]:
        request = urllib.request.Request(url, headers=dict(headers))
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read()
        except (urllib.error.URLError, OSError) as exc:
            raise DownloadError(f"cannot reach {url.split('?')[0]}: {exc}") from exc

    def _fetch(self, file: str, target: Target, partial: Path) -> None:
        """Download to `partial`, resuming after a cut; a new URL if the signed one expired."""
        validator: str | None = None
        resumes = 0
        while True:
            have = partial.stat().st_size if partial.exists() else 0
            headers = {"Accept-Encoding": "identity"}
            if have:
                headers["Range"] = f"bytes={have}-"
                if validator:
                    headers["If-Range"] = validator
            request = urllib.request.Request(target.url, headers=headers)
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    validator = response.headers.get("ETag") or validator
                    mode = "ab" if response.status == 206 else "wb"
                    expected = response.headers.get("Content-Length")
                    written = 0
                    with partial.open(mode) as out:
                        while chunk := response.read(CHUNK):
                            out.write(chunk)
                            written += len(chunk)
                    # A read in parts ends quietly when the connection closes early.
                    if expected is not None and written < int(expected):
                        raise http.client.IncompleteRead(b"", int(expected) - written)
                return
            except urllib.error.HTTPError as error:
                error.close()
                if error.code == 416 and have:  # everything is already here
                    return
                if error.code == 403 and resumes < MAX_RESUMES:  # expired: ask again
                    target = self._same_file(file, target)
                    resumes += 1
                    continue
                raise DownloadError(f"the file's URL answered {error.code}") from error
            except (http.client.HTTPException, OSError) as exc:
                resumes += 1
                if resumes > MAX_RESUMES:
                    raise DownloadError(f"the download was cut {resumes} times: {exc}") from exc
                got = partial.stat().st_size if partial.exists() else 0
                self.report(f"cut after {got} bytes ({exc}); resuming")

    def _same_file(self, file: str, target: Target) -> Target:
        fresh = self.target(file)
        if fresh.sha256 != target.sha256:
            raise DownloadError("the file changed during the download; run it again")
        return fresh

    def _verify(self, target: Target, partial: Path) -> None:
        size = partial.stat().st_size
        if target.size is not None and size != target.size:
            raise DownloadError(f"got {size} bytes, {target.size} were announced")
        if target.sha256 is None:
            raise DownloadError("the answer announced no digest to check the file against")
        digest = hashlib.sha256()
        with partial.open("rb") as data:
            while chunk := data.read(CHUNK):
                digest.update(chunk)
        if digest.digest() != target.sha256:
            raise DownloadError("the file's SHA-256 is not the announced one; deleted it")


def _problem(status: int, body: bytes) -> str:
    """One line from a problem+json (or API Gateway's) answer."""
    try:
        document = json.loads(body)
    except ValueError:
        return f"the API answered {status}"
    if isinstance(document, dict):
        detail = document.get("detail") or document.get("message")
        title = document.get("title")
        if detail:
            return f"{status} {title}: {detail}" if title else f"{status}: {detail}"
    return f"the API answered {status}"
