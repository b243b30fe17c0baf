"""Serving a feed request: count it, read in one parallel round, decide, rebuild if needed."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from offload import freshness, storage, usage
from offload.auth import Client
from offload.config import BUCKET_NAME, ConfigurationError
from offload.errors import NotGenerated, OffloadError
from offload.etags import matches_any
from offload.feeds.cachekey import FeedRequest, parse_feed_request
from offload.feeds.decision import Hit, decide
from offload.feeds.delivery import Delivery
from offload.feeds.outcome import Outcome, Served
from offload.feeds.plugin import check_timing
from offload.feeds.registry import REGISTRY, FeedRegistry
from offload.files import Generation, download_name
from offload.observability import logger, metrics
from offload.ratelimit import RateStatus, consume, refuse_if_spent
from offload.runtime import Runtime
from offload.signing import UrlSigner
from offload.storage import Copy, Download, Integrity

if TYPE_CHECKING:
    from offload.feeds.background_build import Launch
    from offload.feeds.rebuild import Rebuilder

# Answers from a file already stored; the rest generated one (or wait for it).
HITS = frozenset({Outcome.HIT, Outcome.STALE, Outcome.STALE_ON_ERROR})
# Cache keys whose last object a container remembers for the speculative HEAD.
MAX_REMEMBERED = 10_000

Metered = Callable[[RateStatus], None]


@dataclass(frozen=True, slots=True)
class FeedAnswer:
    """A redirect to `location`, or the generated `body` inline, or `not_modified` (the
    client holds the current file); with `link`, the URL is the answer's body instead.
    `retry_after` is set while the file is generated in the background: ask again then."""

    outcome: Outcome
    content_type: str
    location: str | None = None
    body: bytes | None = None
    etag: str | None = None
    not_modified: bool = False
    link: Link | None = None
    retry_after: int | None = None
    # What a redirect or link hands out, and until when: the audit log's subject.
    object_key: str | None = None
    expires_at: float | None = None

    def usage(self, served: Served) -> dict[usage.Field, int]:
        """What this answer adds to the client's usage (the request itself is counted apart).

        `bytes` is the size of what a redirect or link points at, or of the inline body; a
        redirect to a gzip copy counts the file's size as generated, the only one known.
        """
        if self.not_modified:
            return {usage.Field.NOT_MODIFIED: 1}
        kind = usage.Field.HITS if self.outcome in HITS else usage.Field.MISSES
        if self.body is not None:
            size = len(self.body)
        elif self.link is not None:
            size = self.link.size
        else:
            size = (served.size or 0) if self.location is not None else 0
        return {kind: 1, usage.Field.BYTES: size}
    # `Repr-Digest` (RFC 9530) of exactly what `location` or the link's URL returns.
    digest: str | None = None
    # What a client saves an inline body as (a redirect's URL says it for the file).
    disposition: str | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """Where and until when the file can be fetched, for clients that do not follow a 307;
    `size`, `digest` and `content_encoding` describe exactly the bytes the URL returns."""

    url: str
    expires_at: float
    etag: str
    size: int
    content_type: str
    digest: str | None = None
    content_encoding: str | None = None

    def document(self) -> dict[str, str | int | None]:
        """The link as JSON: `expires_at` in ISO 8601 UTC."""
        expires_at = datetime.fromtimestamp(self.expires_at, tz=UTC).isoformat(timespec="seconds")
        return {
            "url": self.url,
            "expires_at": expires_at,
            "etag": self.etag,
            "size": self.size,
            "content_type": self.content_type,
            "content_encoding": self.content_encoding,
            "digest": self.digest,
        }


class FeedService:
    """Serves feed requests; one instance per container."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        registry: FeedRegistry = REGISTRY,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        launch: Launch | None = None,
    ) -> None:
        """`launch` starts background generations (default: the generator function);
        `clock` and `sleep` are the time a request waits in (a test's own, or the wall's)."""
        check_timing(registry, runtime.settings)
        if runtime.settings.bucket_name is None:
            raise ConfigurationError(f"{BUCKET_NAME} is not set: feeds are stored in a bucket")
        self._runtime = runtime
        self._bucket = runtime.settings.bucket_name
        self._registry = registry
        self._clock = clock
        self._sleep = sleep
        self._launch = launch
        # The last object seen per cache key, HEADed speculatively in the first round so
        # a warm hit costs one parallel round of AWS calls.
        self._known: dict[str, str] = {}

    @functools.cached_property
    def _rebuilder(self) -> Rebuilder:
        # What a miss needs (locks, generation, background launches, events) is imported at
        # the first miss: a container whose requests hit never loads it. Two threads racing
        # here would build two equivalent rebuilders, which hold no state of their own.
        from offload.feeds.background_build import LambdaLauncher
        from offload.feeds.rebuild import Rebuilder

        return Rebuilder(
            self._runtime,
            self._bucket,
            exists=self._exists,
            clock=self._clock,
            sleep=self._sleep,
            launch=self._launch or LambdaLauncher(self._runtime.settings),
        )

    def handle(
        self,
        file: str,
        raw_query: str,
        client: Client,
        *,
        headers: Mapping[str, str] | None = None,
        metered: Metered,
        probe: bool = False,
    ) -> FeedAnswer:
        """Validate `/feeds/{file}?{raw_query}` and serve it; invalid requests count too.

        `headers` (lower-case names) say how to deliver (`Accept`, `If-None-Match`).
        `metered` hears the client's rate status as soon as the request is counted, so
        that every answer, error or not, can carry it. `probe` (a HEAD) never generates.
        """
        try:
            delivery = Delivery.of(headers or {}, raw_query)
            request = parse_feed_request(file, raw_query, client.client_id, self._registry)
        except OffloadError:
            # Metered like anything else, so junk cannot be sent for free.
            metered(self._count(client, self._feed_named(file)))
            raise
        return self.serve(request, client, delivery=delivery, metered=metered, probe=probe)

    def serve(
        self,
        request: FeedRequest,
        client: Client,
        *,
        delivery: Delivery | None = None,
        metered: Metered,
        probe: bool = False,
    ) -> FeedAnswer:
        """Answer a validated request for an authenticated client; counts it against the limit.

        `probe`: a HEAD, answered from what is stored (a fresh file, else a stale one), or
        NotGenerated; it never starts a generation."""
        delivery = delivery or Delivery()
        window = self._runtime.settings.rate_limit_window
        feed = request.feed.name
        refuse_if_spent(client, window_seconds=window, now=self._clock(), feed=feed)
        pool = self._runtime.pool
        guess = self._known.get(request.cache_id)
        rate = pool.submit(self._count, client, feed)
        entry_read = pool.submit(freshness.read_entry, request.cache_id)
        coverage_read = pool.submit(freshness.read_coverage, request.feed.name, request.owner)
        guessed_head = pool.submit(self._exists, guess) if guess else None
        metered(rate.result())
        entry, coverage = entry_read.result(), coverage_read.result()
        if entry is None:
            exists = False
        elif guessed_head is not None and entry.object_key == guess:
            exists = guessed_head.result()
        else:
            exists = self._exists(entry.object_key)
        decision = decide(
            entry, exists=exists, coverage=coverage, feed=request.feed, now=self._clock()
        )
        if isinstance(decision, Hit):
            metrics.add_metric(name="Hits", unit=MetricUnit.Count, value=1)
            served = Served(
                Outcome.HIT,
                decision.object_key,
                size=decision.size,
                integrity=decision.integrity,
            )
        elif probe:
            if decision.stale is None:
                raise NotGenerated(
                    "no file is stored for this request yet; a GET generates it"
                )
            served = Served(Outcome.STALE, decision.stale, integrity=decision.stale_integrity)
        else:
            if decision.stale:
                self._remember(request.cache_id, decision.stale)
            served = self._rebuilder.rebuild(request, coverage, decision, inline=not delivery.link)
            if served.integrity is None and served.object_key == decision.stale:
                served = replace(served, integrity=decision.stale_integrity)
        if served.object_key is not None:
            self._remember(request.cache_id, served.object_key)
        answer = self._answer(request, served, delivery, probe=probe)
        counts = answer.usage(served)
        usage.PENDING.add(client.client_id, feed, counts)
        if handed_out := counts.get(usage.Field.BYTES):
            metrics.add_metric(name="BytesHandedOut", unit=MetricUnit.Bytes, value=handed_out)
        return answer

    def _answer(
        self, request: FeedRequest, served: Served, delivery: Delivery, *, probe: bool = False
    ) -> FeedAnswer:
        answer = FeedAnswer(served.outcome, request.content_type)
        if served.outcome is Outcome.PENDING:
            return replace(answer, retry_after=self._runtime.settings.retry_after_seconds)
        generation = Generation.of_object(served.object_key) if served.object_key else None
        if generation is None:  # a private copy, never stored: no tag, nothing to link to
            name = download_name(request.feed.name, request.format, self._clock())
            disposition = Download(name, request.content_type).disposition
            return replace(answer, body=served.body or b"", disposition=disposition)
        if served.body is not None:  # inline, as generated, saved as its redirect would be
            disposition = Download.of(generation, request.content_type).disposition
            return replace(
                answer, body=served.body, etag=generation.etag, disposition=disposition
            )
        # The gzip copy is another representation: its own key and its own tag.
        key, etag = (
            (generation.gzip_key, generation.gzip_etag)
            if delivery.gzip
            else (generation.object_key, generation.etag)
        )
        answer = replace(answer, etag=etag)
        # Whatever sent us here (a hit, a stale file, another's upload), the answer is this
        # stored file: a client holding it needs nothing more.
        held = (generation.etag, generation.gzip_etag)
        if any(matches_any(delivery.if_none_match, tag) for tag in held):
            return replace(answer, not_modified=True)
        copy = self._copy(generation, served, gzip=delivery.gzip)
        if copy is not None:
            answer = replace(answer, digest=copy.digest)
        signer = self._signer()
        download = Download.of(generation, request.content_type)
        answer = replace(answer, object_key=key, expires_at=self._clock() + signer.ttl)
        if not delivery.link:
            # A HEAD follows the 307 as a HEAD, which a URL signed for GET refuses.
            url = signer.sign(key, download, method="HEAD" if probe else "GET")
            return replace(answer, location=url)
        link = Link(
            url=signer.sign(key, download),
            expires_at=answer.expires_at or 0.0,
            etag=etag,
            size=copy.size if copy is not None else 0,
            content_type=request.content_type,
            digest=copy.digest if copy is not None else None,
            content_encoding="gzip" if delivery.gzip else None,
        )
        return replace(answer, link=link)

    def _copy(self, generation: Generation, served: Served, *, gzip: bool) -> Copy | None:
        """The size and digest of the copy answered: as served, else from the object's HEAD
        (a stale file, another request's upload); None for an object stored without them."""
        integrity: Integrity | None = served.integrity
        if integrity is None:
            stored = storage.head(self._runtime.s3, self._bucket, generation.object_key)
            if stored is None:
                return None
            integrity = stored.integrity
            if integrity is None:  # stored before digests: the size alone, from S3
                if gzip:
                    copy = storage.head(self._runtime.s3, self._bucket, generation.gzip_key)
                    return None if copy is None else Copy(copy.size, None)
                return Copy(stored.size, None)
        return integrity.copy(gzip=gzip)

    def _signer(self) -> UrlSigner:
        signer = self._runtime.signer
        assert signer is not None, "a runtime with a bucket has a signer"
        return signer

    def _count(self, client: Client, feed: str) -> RateStatus:
        settings = self._runtime.settings
        return consume(
            client,
            window_seconds=settings.rate_limit_window,
            now=self._clock(),
            feed=feed,
            retention_seconds=settings.usage_retention_days * 86_400,
        )

    def _feed_named(self, file: str) -> str:
        """The feed a request that failed validation names, if it is one; else usage.NO_FEED."""
        name = file.partition(".")[0]
        return name if self._registry.get(name) is not None else usage.NO_FEED

    def _remember(self, cache_id: str, object_key: str) -> None:
        if len(self._known) >= MAX_REMEMBERED and cache_id not in self._known:
            self._known.clear()  # a rare cold round beats unbounded memory
        self._known[cache_id] = object_key

    def _exists(self, object_key: str) -> bool:
        """Whether the object is there. A HEAD that fails counts as "not known to be": the
        file is rebuilt, never redirected to unchecked, and the request does not fail."""
        try:
            return storage.object_exists(self._runtime.s3, self._bucket, object_key)
        except (BotoCoreError, ClientError):
            logger.warning("HEAD failed; the file counts as missing", exc_info=True)
            return False


AUDIT_MESSAGE = "download issued"


def audit_download(answer: FeedAnswer, client: Client, file: str, event: Any) -> None:
    """One structured log line per issued redirect or link: who may fetch what, until when.

    Never the API key nor the signed URL (both are credentials). `event` is the request's
    Powertools APIGatewayProxyEventV2.
    """
    expires_at = answer.expires_at or 0.0
    http = event.request_context.http
    logger.info(
        AUDIT_MESSAGE,
        extra={
            "audit": "download",
            "client_id": client.client_id,
            "feed": file.partition(".")[0],
            "object_key": answer.object_key,
            "delivery": "link" if answer.link is not None else "redirect",
            "expires_at": datetime.fromtimestamp(expires_at, tz=UTC).isoformat(timespec="seconds"),
            "source_ip": http.source_ip,
            "user_agent": http.user_agent,
            "outcome": answer.outcome.name.lower(),
        },
    )
