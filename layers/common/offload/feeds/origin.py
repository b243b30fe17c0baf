"""Origin-backed feeds: the file is what the team's own endpoint answers, fetched once per
generation and checked before anything is stored.

A feed declares a URL template instead of a generator (`origin_feed`); on a miss the lock's
owner fetches it here, and the rebuild stores, compresses and redirects as for any feed. A
failed check raises what a failed generator raises, so the answer is the same: stale-if-error,
else a 502 (a 503 with Retry-After when it timed out).

Only modules that declare origin feeds import this one. The HTTP client is urllib3, which
botocore already ships in every Lambda: no dependency is added.
"""

from __future__ import annotations

import functools
import http.client
import string
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError, NewConnectionError, ProtocolError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from offload.config import (
    ORIGIN_BASE_URL,
    ORIGIN_CREDENTIAL_PARAMETER,
    ORIGIN_CREDENTIAL_SECRET,
    ConfigurationError,
    Settings,
    get_settings,
)
from offload.errors import (
    DependencyUnavailable,
    GenerationFailed,
    GenerationTimedOut,
    InvalidRequest,
)
from offload.feeds.plugin import (
    Feed,
    Generated,
    GenerationRequest,
    Parameter,
    Unchanged,
    Validators,
)
from offload.observability import logger

# What a feed may hold in memory: the file, then its gzip copy, in a 1 GB function.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# Encodings decoded here (urllib3 would pass others through undecoded: they fail instead).
DECODED = frozenset({"identity", "gzip", "x-gzip", "deflate"})
ACCEPT_ENCODING = "gzip, deflate"
CONNECT_SECONDS = 5.0
CHUNK_BYTES = 256 * 1024
# Placeholders every template may use besides the feed's parameters.
CLIENT_ID, FORMAT, FEED = "client_id", "format", "feed"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a feed's file comes from: a URL template below ORIGIN_BASE_URL, filled from the
    request (`{client_id}`, `{format}`, `{feed}`, `{<parameter>}`); given parameters the
    template does not name go in the query string. Called as the feed's generator."""

    url: str
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_seconds: float = 10.0
    # Sent with every fetch (`Accept`, say); the credential header comes from settings.
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(name for _, name, _, _ in string.Formatter().parse(self.url) if name)

    def check(self, feed: str, parameters: Iterable[Parameter], *, shared: bool) -> None:
        """Every placeholder is one the feed can fill; ValueError otherwise."""
        fillable = {FORMAT, FEED, *(parameter.name for parameter in parameters)}
        if not shared:
            fillable.add(CLIENT_ID)
        unknown = sorted(set(self.placeholders) - fillable)
        if unknown:
            raise ValueError(
                f"feed {feed!r}: the origin URL names {', '.join(unknown)}, which "
                + ("a shared feed cannot fill (no client)" if shared else "it does not declare")
            )
        if self.max_bytes <= 0:
            raise ValueError(f"feed {feed!r}: max_bytes must be positive")

    def target(self, base_url: str, job: GenerationRequest) -> str:
        """The URL to fetch for `job`: the template filled, below `base_url`."""
        named = set(self.placeholders)
        missing = sorted(
            name for name in named - {CLIENT_ID, FORMAT, FEED} if name not in job.params
        )
        if missing:
            # A request without a value the path needs: the caller's mistake.
            raise InvalidRequest(f"feed {job.feed!r} needs the parameter {missing[0]!r}")
        values = {CLIENT_ID: job.client_id, FORMAT: job.format, FEED: job.feed, **job.params}
        path = self.url.format_map({name: quote(values[name], safe="") for name in named})
        query = urlencode(sorted((k, v) for k, v in job.params.items() if k not in named))
        url = f"{base_url.rstrip('/')}/{path.lstrip('/')}"
        if query:
            url += ("&" if "?" in url else "?") + query
        return url

    def __call__(self, job: GenerationRequest) -> Generated | Unchanged:
        return origin_client().fetch(self, job)


def origin_feed(
    name: str,
    *,
    formats: Mapping[str, str],
    url: str,
    parameters: tuple[Parameter, ...] = (),
    max_age_seconds: int = 3600,
    shared: bool = False,
    generation_timeout_seconds: float = 10.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    headers: Mapping[str, str] | None = None,
    description: str = "",
) -> Feed:
    """A feed whose file is the origin's answer at `url` (a template below ORIGIN_BASE_URL)."""
    origin = Origin(
        url,
        max_bytes=max_bytes,
        timeout_seconds=generation_timeout_seconds,
        headers=dict(headers or {}),
    )
    origin.check(name, parameters, shared=shared)
    return Feed(
        name=name,
        formats=formats,
        generate=origin,
        parameters=parameters,
        max_age_seconds=max_age_seconds,
        shared=shared,
        generation_timeout_seconds=generation_timeout_seconds,
        description=description,
    )


class OriginRefused(GenerationFailed):
    """The origin's answer failed a check: nothing of it is stored."""


class OriginClient:
    """Fetches origin files with one pool and a credential read once per container."""

    def __init__(self, settings: Settings, pools: Any | None = None) -> None:
        """`pools`: anything with urllib3's `PoolManager.request` (tests pass a fake)."""
        self._settings = settings
        self._pools = pools if pools is not None else pool_manager()
        self._credential: str | None = None
        self._lock = threading.Lock()

    def fetch(self, origin: Origin, job: GenerationRequest) -> Generated | Unchanged:
        """The origin's file for `job`, checked whole; Unchanged on a 304 to a conditional ask."""
        base = self._settings.origin_base_url
        if base is None:
            raise ConfigurationError(
                f"{ORIGIN_BASE_URL} is not set: feed {job.feed!r} has no origin"
            )
        url = origin.target(base, job)
        deadline = time.monotonic() + origin.timeout_seconds
        response = self._send(url, self._headers(origin, job), origin.timeout_seconds)
        try:
            return self._read(response, origin, job, deadline)
        finally:
            response.release_conn()

    def _headers(self, origin: Origin, job: GenerationRequest) -> dict[str, str]:
        headers = {
            **origin.headers,
            "Accept-Encoding": ACCEPT_ENCODING,
            # The origin closes after its answer, so a body longer than its Content-Length
            # shows (it is read to the end) instead of being cut at the length it declared.
            "Connection": "close",
            "User-Agent": "Offload",
        }
        previous = job.previous
        if previous is not None and previous.etag:
            headers["If-None-Match"] = previous.etag
        if previous is not None and previous.last_modified:
            headers["If-Modified-Since"] = previous.last_modified
        if (credential := self.credential()) is not None:
            headers[self._settings.origin_credential_header] = credential
        return headers

    def _send(self, url: str, headers: dict[str, str], timeout: float) -> Any:
        try:
            return self._pools.request(
                "GET",
                url,
                headers=headers,
                timeout=urllib3.Timeout(connect=min(CONNECT_SECONDS, timeout), read=timeout),
                retries=False,
                # A redirect elsewhere would take the credential with it: a 3xx fails.
                redirect=False,
                preload_content=False,
                # Decoded here, exactly once and checked whole (see _Decoding).
                decode_content=False,
            )
        except NewConnectionError as exc:  # urllib3 makes it a timeout; it is a refusal
            logger.warning("origin unreachable", extra={"origin_url": url, "error": str(exc)})
            raise GenerationFailed("the origin could not be reached") from exc
        except Urllib3Timeout as exc:
            raise GenerationTimedOut(f"the origin did not answer within {timeout} s") from exc
        except HTTPError as exc:
            logger.warning("origin unreachable", extra={"origin_url": url, "error": str(exc)})
            raise GenerationFailed("the origin could not be reached") from exc

    def _read(
        self, response: Any, origin: Origin, job: GenerationRequest, deadline: float
    ) -> Generated | Unchanged:
        status = int(response.status)
        if status == http.HTTPStatus.NOT_MODIFIED and job.previous is not None:
            return Unchanged()
        if not 200 <= status < 300:
            raise _refused(job, f"the origin answered {status}")
        codings = _codings(response.headers.get("Content-Encoding", ""))
        if unknown := [coding for coding in codings if coding not in DECODED]:
            raise _refused(
                job, f"the origin sent Content-Encoding {unknown[0]!r}, not decoded here"
            )
        declared = _content_length(response.headers.get("Content-Length"), job)
        if declared is not None and not codings and declared > origin.max_bytes:
            raise _refused(
                job, f"the origin's file is larger than the feed's {origin.max_bytes} bytes"
            )
        too_large = f"the origin's file is larger than the feed's {origin.max_bytes} bytes"
        late = f"the origin did not finish within {origin.timeout_seconds} s"
        decoder = _Decoding(codings)
        chunks: list[bytes] = []
        size = 0
        try:
            # read1: whatever has arrived, so a trickling origin meets the deadline too.
            while raw := response.read1(CHUNK_BYTES, decode_content=False):
                for piece in decoder.decode(raw):
                    size += len(piece)
                    if size > origin.max_bytes:
                        raise _refused(job, too_large)
                    chunks.append(piece)
                if time.monotonic() > deadline:
                    raise GenerationTimedOut(late)
            decoder.finish()
        except zlib.error as exc:
            raise _refused(
                job, f"the origin's body is not the {', '.join(codings)} it names"
            ) from exc
        except Urllib3Timeout as exc:
            raise GenerationTimedOut(late) from exc
        except ProtocolError as exc:
            raise _refused(job, _cut(response.tell(), declared)) from exc
        validators = Validators(response.headers.get("ETag"), response.headers.get("Last-Modified"))
        return Generated(b"".join(chunks), validators)

    def credential(self) -> str | None:
        """The credential header's value, read on first use and kept for the container."""
        settings = self._settings
        if not (settings.origin_credential_parameter or settings.origin_credential_secret):
            return None
        with self._lock:
            if self._credential is None:
                self._credential = _read_credential(settings)
            return self._credential


def _read_credential(settings: Settings) -> str:
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        if settings.origin_credential_parameter:
            value = parameters.get_parameter(settings.origin_credential_parameter, decrypt=True)
        else:
            value = parameters.get_secret(settings.origin_credential_secret or "")
    except GetParameterError as exc:
        named = (
            ORIGIN_CREDENTIAL_PARAMETER
            if settings.origin_credential_parameter
            else (ORIGIN_CREDENTIAL_SECRET)
        )
        # The error names the parameter, never a value.
        logger.warning("cannot read the origin's credential", extra={"setting": named})
        raise DependencyUnavailable(
            "the origin's credential could not be read; retry shortly"
        ) from exc
    return str(value).strip()


def _refused(job: GenerationRequest, why: str) -> OriginRefused:
    logger.warning("origin answer refused", extra={"feed": job.feed, "reason": why})
    return OriginRefused(f"feed {job.feed!r} could not be fetched: {why}")


def _codings(header: str) -> list[str]:
    """The content codings applied, in order; `identity` is no coding."""
    codings = [coding.strip().lower() for coding in header.split(",")]
    return [coding for coding in codings if coding and coding != "identity"]


def _content_length(value: str | None, job: GenerationRequest) -> int | None:
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        length = -1
    if length < 0:
        raise _refused(job, f"the origin sent Content-Length {value!r}")
    return length


def _cut(received: int, declared: int | None) -> str:
    if declared is None:
        return "the origin's answer ended before its last chunk"
    if received > declared:
        return f"the origin sent more than its Content-Length of {declared} bytes"
    return f"the origin's answer ended after {received} of {declared} bytes"


class _Decoding:
    """Undoes the content codings an answer names, each once, in reverse order; a stream
    that ends early or carries bytes after its end is a zlib.error. Output comes in pieces
    of at most CHUNK_BYTES, so a small body cannot inflate past the limit unnoticed."""

    def __init__(self, codings: list[str]) -> None:
        self._stages = [_Stage(coding) for coding in reversed(codings)]

    def decode(self, data: bytes) -> Iterator[bytes]:
        pieces = [data]
        for stage in self._stages:
            pieces = [out for piece in pieces for out in stage.decode(piece)]
        return iter(pieces)

    def finish(self) -> None:
        for stage in self._stages:
            stage.finish()


class _Stage:
    """One coding: gzip (members one after another, as RFC 1952 allows) or deflate (zlib's
    format, or raw deflate as some servers send it)."""

    def __init__(self, coding: str) -> None:
        self._gzip = coding in ("gzip", "x-gzip")
        self._obj: Any = None
        self._started = False

    def _new(self, first: bytes) -> Any:
        if self._gzip:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # A zlib stream starts with a header whose first 16 bits are a multiple of 31.
        wrapped = len(first) >= 2 and first[0] & 0x0F == 8 and int.from_bytes(first[:2]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)

    def decode(self, data: bytes) -> Iterator[bytes]:
        while data:
            if self._obj is None or self._obj.eof:
                if self._obj is not None and not self._gzip:
                    raise zlib.error("bytes after the end of the deflate stream")
                self._obj = self._new(data)
                self._started = True
            out = self._obj.decompress(data, CHUNK_BYTES)
            if out:
                yield out
            data = self._obj.unconsumed_tail or self._obj.unused_data
            if not data and not self._obj.eof:
                return

    def finish(self) -> None:
        if not self._started or not self._obj.eof:
            raise zlib.error("the stream ends before its end")


class _ReadToClose(http.client.HTTPResponse):
    """Reads a body to the end of the connection, not just to its Content-Length, so that
    urllib3's length check sees a body longer than declared as well as a shorter one."""

    def begin(self) -> None:
        super().begin()
        if self.length is not None and 200 <= self.status < 300:
            self.length = None
            self.will_close = True


class _HTTPConnection(HTTPConnection):
    response_class = _ReadToClose


class _HTTPSConnection(HTTPSConnection):
    response_class = _ReadToClose


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def pool_manager() -> urllib3.PoolManager:
    """urllib3's pool manager with connections that read each body to the end."""
    pools = urllib3.PoolManager(num_pools=4, maxsize=4)
    pools.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
    return pools


@functools.cache
def origin_client() -> OriginClient:
    """The container's origin client, made on the first fetch."""
    return OriginClient(get_settings())
