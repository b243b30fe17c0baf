"""Metering requests: every AWS call a request causes, its rounds, bytes and request units.

The template's functions run in-process on moto (routes, events and answers as the local
stack makes them) while botocore's event hooks record each call: service and operation,
attempts, body bytes sent and received, DynamoDB request units (estimated from the bodies),
presigned URLs, and start and end times. Calls that overlap in time form one *round*; the
*chain* is the longest run of calls each starting after the previous one ended. A simulated
round trip is added to every AWS call, so that parallel calls visibly overlap.

`bench/calls.py` and `bench/cost.py` measure with it; tests/unit/test_calls_per_request.py
holds the counts the design promises.
"""

import itertools
import json
import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import quote_plus, unquote, urlsplit

# Offload's modules are imported where they are used: Powertools reads its settings from the
# environment when imported, and the bench sets that environment first.
from offload import api_keys
from offload_local.template import ROOT

EVENTS = ROOT / "events"

# One file of the size the cost model prices, so its bytes are measured rather than scaled.
DOWNLOAD_BYTES = 1_000_000
BENCH_FEED = "bench-download"
FEED_KEY = "bench-feeds-key"
LIMITED_KEY = "bench-limited-key"
ADMIN_KEY = "bench-admin-key"
# Effectively unlimited for the bench client; the limited one is over after one request.
UNLIMITED = 10**9
LIMITED = 1
# A rival request's lease while the stale kind is measured: longer than any run.
RIVAL_LEASE_SECONDS = 3600.0
# The collection a reader polls: edge.py's users have this many matches.
COLLECTION_USER = "bench-user"
COLLECTION_HISTORY = 10
FIRST_MATCH_AT = datetime(2026, 11, 21, 18, 0, tzinfo=UTC)
# How long draining the runtime's pool may take before the run is declared stuck.
DRAIN_TIMEOUT_SECONDS = 30.0
DEFAULT_LATENCY_SECONDS = 0.005
# Lambda's own defaults, for a template that does not say.
LAMBDA_MEMORY_MB = 128
LAMBDA_ARCHITECTURE = "x86_64"

# DynamoDB on-demand units: a read unit is one strongly consistent read of up to 4 KB (half
# for eventually consistent), a write unit one write of up to 1 KB; transactions cost double.
READ_UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024
TRANSACTION_FACTOR = 2
EVENTUAL_FACTOR = 0.5
_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})

# What the in-process requests look like on the wire (for request sizes and events).
API_HOST = "api.example.com"
CLIENT_ADDRESS = "203.0.113.10"
HTTP_VERSION = "HTTP/1.1"


# ---------------------------------------------------------------------------------------
# Recording AWS calls through botocore's event hooks
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """One AWS API call, retries included."""

    service: str  # botocore's service id: "DynamoDB", "S3"
    operation: str  # "GetItem", "HeadObject"
    started: float  # time.perf_counter()
    ended: float
    attempts: int
    sent: int  # request body bytes, all attempts
    received: int  # response body bytes, all attempts (a HEAD's is 0)
    error: str | None  # the error code of a failed call, e.g. ConditionalCheckFailedException
    read_units: float = 0.0
    write_units: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.service}.{self.operation}"


@dataclass(frozen=True, slots=True)
class Trace:
    """The AWS calls one request caused, and the URLs it presigned."""

    calls: tuple[Call, ...] = ()
    presigns: tuple[str, ...] = ()

    @property
    def rounds(self) -> int:
        """Maximal groups of calls that overlap in time."""
        return rounds([(call.started, call.ended) for call in self.calls])

    @property
    def chain(self) -> int:
        """The longest run of calls each starting after the previous one ended."""
        return chain([(call.started, call.ended) for call in self.calls])

    @property
    def operations(self) -> Counter[str]:
        return Counter(call.name for call in self.calls)

    def count(self, service: str | None = None, operation: str | None = None) -> int:
        """Calls to `service` (and `operation`), or all."""
        return sum(
            1
            for call in self.calls
            if (service is None or call.service == service)
            and (operation is None or call.operation == operation)
        )

    @property
    def sent(self) -> int:
        return sum(call.sent for call in self.calls)

    @property
    def received(self) -> int:
        return sum(call.received for call in self.calls)

    @property
    def read_units(self) -> float:
        return sum(call.read_units for call in self.calls)

    @property
    def write_units(self) -> float:
        return sum(call.write_units for call in self.calls)

    @property
    def signature(self) -> tuple[tuple[tuple[str, int], ...], int, int, int]:
        """What identifies the shape of a request's AWS work, to compare repeats."""
        return (tuple(sorted(self.operations.items())), self.rounds, self.chain, len(self.presigns))


def rounds(intervals: Sequence[tuple[float, float]]) -> int:
    """The number of maximal groups of overlapping (start, end) intervals."""
    groups, reach = 0, -math.inf
    for start, end in sorted(intervals):
        if start > reach:
            groups += 1
            reach = end
        else:
            reach = max(reach, end)
    return groups


def chain(intervals: Sequence[tuple[float, float]]) -> int:
    """The longest sequence of intervals each starting after the previous one ended."""
    ordered = sorted(intervals)
    depth: list[int] = []
    for index, (start, _) in enumerate(ordered):
        before = [depth[i] for i in range(index) if ordered[i][1] <= start]
        depth.append(1 + max(before, default=0))
    return max(depth, default=0)


@dataclass
class _Pending:
    """A call in flight: what its events have told so far."""

    service: str
    operation: str
    params: Mapping[str, Any]
    started: float
    attempts: int = 0
    sent: int = 0
    received: int = 0


@dataclass(eq=False)  # recordings nest: one is removed by identity, not content
class Recording:
    """The calls and presigns recorded while it was open; `trace` is complete on exit."""

    calls: list[Call] = field(default_factory=list)
    presigns: list[str] = field(default_factory=list)

    @property
    def trace(self) -> Trace:
        return Trace(tuple(sorted(self.calls, key=lambda call: call.started)), tuple(self.presigns))


class Recorder:
    """Records the AWS calls of the clients it watches while a recording is open.

    Hooks are botocore events on each client's own emitter, registered under a unique id so
    watching a client twice is harmless; outside a recording they do nothing. Recordings
    nest: a call lands in every recording open when it ends.
    """

    def __init__(self, *, latency: float = 0.0) -> None:
        # Slept once per attempt while recording: a round trip moto does not have.
        self.latency = latency
        self._lock = threading.Lock()
        self._open: list[Recording] = []
        self._id = f"offload-bench-calls-{id(self)}"
        # Where a call's record travels in botocore's request context: per recorder, as an
        # old one's hooks stay on the clients it watched and must not take this one's calls.
        self._key = self._id

    def watch(self, *clients: Any) -> None:
        """Hook botocore clients (boto3's clients are botocore clients)."""
        for client in clients:
            self._hook(client.meta.events)

    def watch_new_boto3_clients(self) -> None:
        """Hook boto3's default session, so clients it creates from now on are watched."""
        import boto3

        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        self._hook(boto3.DEFAULT_SESSION.events)

    def watch_pynamodb(self) -> None:
        """Hook every PynamoDB connection as it dispatches.

        PynamoDB makes its own botocore session (per connection and thread) and client, so
        its calls never pass boto3's. Its `pre_dynamodb_send` signal names the connection
        just before the call, in time to hook `connection.client` for it and every later one.
        """
        from pynamodb.signals import pre_dynamodb_send

        pre_dynamodb_send.connect(self._on_pynamodb_send)

    @contextmanager
    def recording(self) -> Iterator[Recording]:
        """Record every watched call that ends while the block runs."""
        recording = Recording()
        with self._lock:
            self._open.append(recording)
        try:
            yield recording
        finally:
            with self._lock:
                self._open.remove(recording)

    def _hook(self, events: Any) -> None:
        handlers: tuple[tuple[str, Callable[..., None]], ...] = (
            ("before-parameter-build", self._started),
            ("before-send", self._sending),
            ("response-received", self._received),
            ("after-call", self._finished),
            ("after-call-error", self._failed),
        )
        for event, handler in handlers:
            events.register(event, handler, unique_id=f"{self._id}-{event}")
        # First, before moto answers on the calling thread: parallel calls all wait out their
        # round trip together instead of queueing for the interpreter lock behind moto's work.
        events.register_first("before-send", self._delay, unique_id=f"{self._id}-delay")

    def _on_pynamodb_send(self, connection: Any, **_: Any) -> None:
        self.watch(connection.client)

    def _started(
        self, params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        if not self._open or self._key in context:
            return
        service = str(model.service_model.service_id)
        if context.get("is_presign_request"):
            # A presigned URL is made, not sent: no call, but worth counting.
            with self._lock:
                for recording in self._open:
                    recording.presigns.append(f"{service}.{model.name}")
            return
        context[self._key] = _Pending(service, model.name, params, time.perf_counter())

    def _sending(self, request: Any, **_: Any) -> None:
        pending = (getattr(request, "context", None) or {}).get(self._key)
        if pending is None:
            return
        pending.attempts += 1
        pending.sent += _request_body_size(request)

    def _delay(self, request: Any, **_: Any) -> None:
        if self.latency and self._key in (getattr(request, "context", None) or {}):
            time.sleep(self.latency)

    def _received(
        self, response_dict: Mapping[str, Any] | None, context: dict[str, Any], **_: Any
    ) -> None:
        pending = context.get(self._key)
        if pending is not None and response_dict is not None:
            pending.received += _response_body_size(response_dict)

    def _finished(
        self, http_response: Any, parsed: Mapping[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        error = None
        if http_response.status_code >= 300:
            error = parsed.get("Error", {}).get("Code") or str(http_response.status_code)
        self._close(context, error)

    def _failed(self, exception: BaseException, context: dict[str, Any], **_: Any) -> None:
        self._close(context, type(exception).__name__)

    def _close(self, context: dict[str, Any], error: str | None) -> None:
        pending = context.pop(self._key, None)
        if pending is None:
            return
        reads, writes = request_units(
            pending.service,
            pending.operation,
            pending.params,
            sent=pending.sent,
            received=pending.received,
        )
        call = Call(
            service=pending.service,
            operation=pending.operation,
            started=pending.started,
            ended=time.perf_counter(),
            attempts=pending.attempts,
            sent=pending.sent,
            received=pending.received,
            error=error,
            read_units=reads,
            write_units=writes,
        )
        with self._lock:
            for recording in self._open:
                recording.calls.append(call)


def _request_body_size(request: Any) -> int:
    length = request.headers.get("Content-Length")
    if length is not None:
        return int(length)
    body = request.body
    if isinstance(body, bytes | bytearray):
        return len(body)
    if isinstance(body, str):
        return len(body.encode())
    return 0


def _response_body_size(response: Mapping[str, Any]) -> int:
    body = response.get("body")
    if isinstance(body, bytes | bytearray):
        return len(body)
    # A streamed body (GetObject) is read later by the caller: its length is announced.
    return int(response.get("headers", {}).get("content-length", 0))


def request_units(
    service: str, operation: str, params: Mapping[str, Any], *, sent: int, received: int
) -> tuple[float, float]:
    """DynamoDB on-demand (read, write) request units of one call, estimated from its bodies.

    DynamoDB rounds each item up (4 KB per read unit, 1 KB per write unit) and charges a
    failed conditional write too. Body sizes stand in for item sizes: a bit above them, as
    the wire format adds type tags and the request its expressions.
    """
    if service != "DynamoDB":
        return 0.0, 0.0
    if operation in _READS:
        items = _item_count(operation, params)
        units = max(items, math.ceil(received / READ_UNIT_BYTES))
        if operation == "TransactGetItems":
            return float(TRANSACTION_FACTOR * units), 0.0
        return units * (1.0 if _consistent(operation, params) else EVENTUAL_FACTOR), 0.0
    if operation in _WRITES:
        items = _item_count(operation, params)
        units = max(items, math.ceil(sent / WRITE_UNIT_BYTES))
        factor = TRANSACTION_FACTOR if operation == "TransactWriteItems" else 1
        return 0.0, float(factor * units)
    return 0.0, 0.0


def _item_count(operation: str, params: Mapping[str, Any]) -> int:
    if operation == "BatchGetItem":
        return sum(len(table["Keys"]) for table in params.get("RequestItems", {}).values())
    if operation == "BatchWriteItem":
        return sum(len(writes) for writes in params.get("RequestItems", {}).values())
    if operation.startswith("Transact"):
        return len(params.get("TransactItems", []))
    return 1


def _consistent(operation: str, params: Mapping[str, Any]) -> bool:
    if operation == "BatchGetItem":
        tables = params.get("RequestItems", {}).values()
        return any(table.get("ConsistentRead") for table in tables)
    return bool(params.get("ConsistentRead"))


def drain(pool: ThreadPoolExecutor, workers: int) -> None:
    """Return once every task submitted to `pool` so far has finished.

    A request may leave parallel calls running after it answers (a 429 raised while the
    speculative reads are in flight); they are its calls, so the recording waits for them:
    `workers` tasks that meet at a barrier can only all run once nothing else does.
    """
    barrier = threading.Barrier(workers + 1)
    for _ in range(workers):
        pool.submit(barrier.wait, DRAIN_TIMEOUT_SECONDS)
    try:
        barrier.wait(DRAIN_TIMEOUT_SECONDS)
    except threading.BrokenBarrierError as exc:
        raise RuntimeError("the runtime's pool did not drain; a task is stuck") from exc


# ---------------------------------------------------------------------------------------
# The API in-process
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request: API Gateway's answer, the function's wall time and the AWS calls."""

    method: str
    target: str
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    request_bytes: int  # the client's HTTP request: request line, headers, body
    response_bytes: int  # API Gateway's HTTP answer: status line, headers, body
    seconds: float  # the handler's wall time (what Lambda bills, before rounding)
    trace: Trace
    download_bytes: int = 0  # what the client then fetches from storage (a 307's file)

    @property
    def cache_status(self) -> str | None:
        """Offload's own `Cache-Status` parameters, e.g. `hit; fwd=stale`."""
        from offload.feeds.outcome import CACHE_STATUS_NAME

        name, _, parameters = self.headers.get("cache-status", "").partition(";")
        return parameters.strip() if name.strip() == CACHE_STATUS_NAME else None

    @property
    def location(self) -> str | None:
        return self.headers.get("location")


def http_size(start_line: str, headers: Mapping[str, str], body: bytes) -> int:
    """The bytes of an HTTP/1.1 message with these headers and body."""
    head = start_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return len(head.encode()) + len(body)


class InProcessApi:
    """The template's functions in-process, one warm container each: requests are routed,
    turned into payload 2.0 events and answered as the local stack's gateway does."""

    def __init__(self, stack: Any, recorder: Recorder) -> None:
        from offload_local.gateway import Gateway
        from offload_local.lambdas import Containers

        functions = stack.functions()
        self.stack = stack
        self.functions = {function.logical_id: function for function in functions}
        self._containers = {function.logical_id: Containers(function) for function in functions}
        self._gateway = Gateway(functions, self._containers, account_id=stack.account_id)
        self.recorder = recorder
        self._ids = itertools.count(1)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> Exchange:
        """Send one request to the function whose route matches, recording its AWS calls."""
        from offload_local.gateway import RAW_HEADERS, http_response

        found = self._gateway.match(method, path)
        if found is None:
            raise LookupError(f"the template routes no {method} {path}")
        target, parameters = found
        sent = {
            "host": API_HOST,
            **{name.lower(): value for name, value in (headers or {}).items()},
        }
        if body:
            sent["content-length"] = str(len(body))
        environ = {
            "REQUEST_METHOD": method,
            "SERVER_PROTOCOL": HTTP_VERSION,
            "SERVER_PORT": "443",
            "wsgi.url_scheme": "https",
            "REMOTE_ADDR": CLIENT_ADDRESS,
            RAW_HEADERS: list(sent.items()),
        }
        event = self._gateway.event(
            environ,
            route=target.route,
            path=path,
            raw_query=query,
            parameters=parameters,
            body=body,
            request_id=f"bench-{next(self._ids)}",
        )
        result, seconds, trace = self.invoke(target.function.logical_id, event)
        answer = http_response(result)
        answered = {name.lower(): value for name, value in answer.headers}
        wire = {**dict(answer.headers), "Content-Length": str(len(answer.body))}
        request_target = f"{path}?{query}" if query else path
        return Exchange(
            method=method,
            target=request_target,
            status=answer.status,
            headers=answered,
            body=answer.body,
            request_bytes=http_size(f"{method} {request_target} {HTTP_VERSION}", sent, body),
            response_bytes=http_size(f"{HTTP_VERSION} {answer.status}", wire, answer.body),
            seconds=seconds,
            trace=trace,
        )

    def invoke(self, logical_id: str, event: dict[str, Any]) -> tuple[Any, float, Trace]:
        """Invoke a function's warm container; (its result, wall seconds, AWS calls)."""
        from offload.runtime import POOL_WORKERS, get_runtime

        with self.recorder.recording() as recording:
            started = time.perf_counter()
            result = self._containers[logical_id].invoke(event)
            seconds = time.perf_counter() - started
            drain(get_runtime().pool, POOL_WORKERS)
        return result, seconds, recording.trace

    def s3_event(self, name: str, bucket: str, key: str) -> list[Exchange]:
        """Deliver an S3 event for `key` to each function the template subscribes to it."""
        event = json.loads((EVENTS / "s3_object_created.json").read_text())
        record = event["Records"][0]
        record["eventName"] = name
        record["s3"]["bucket"]["name"] = bucket
        record["s3"]["object"]["key"] = quote_plus(key, safe="/")
        delivered = []
        for function in self.functions.values():
            if any(n.matches(bucket, name, key) for n in function.notifications):
                _, seconds, trace = self.invoke(function.logical_id, event)
                delivered.append(Exchange("S3", f"{name} {key}", 0, {}, b"", 0, 0, seconds, trace))
        return delivered


# ---------------------------------------------------------------------------------------
# The request kinds
# ---------------------------------------------------------------------------------------


def download_payload(size: int = DOWNLOAD_BYTES) -> bytes:
    """`size` bytes of JSON: hex digits from a fixed seed (compressing about 2:1)."""
    import random

    head, tail = b'{"data":"', b'"}'
    digits = random.Random(size).randbytes(size).hex().encode()
    return head + digits[: size - len(head) - len(tail)] + tail


@contextmanager
def bench_feed(size: int = DOWNLOAD_BYTES) -> Iterator[Any]:
    """Register BENCH_FEED (JSON of exactly `size` bytes; `part` selects a cache key) while
    the block runs: a generic generator, so a miss shows Offload's calls and no feed's own."""
    from offload.feeds import REGISTRY, Feed, Parameter

    data = download_payload(size)
    feed = Feed(
        name=BENCH_FEED,
        formats={"json": "application/json"},
        generate=lambda request: data,
        parameters=(Parameter("part"),),
    )
    REGISTRY.register(feed)
    try:
        yield feed
    finally:
        REGISTRY.unregister(BENCH_FEED)


class UnexpectedAnswer(AssertionError):
    """A request meant to be of one kind was answered as another: its figures would lie."""


def expect(exchange: Exchange, status: int, cache_status: str | None = None) -> Exchange:
    """The exchange, if it was answered with `status` (and Offload's `cache_status`)."""
    if exchange.status != status or (
        cache_status is not None and exchange.cache_status != cache_status
    ):
        raise UnexpectedAnswer(
            f"{exchange.method} {exchange.target}: expected {status} {cache_status or ''}, got "
            f"{exchange.status} {exchange.cache_status or ''} {exchange.body[:200]!r}"
        )
    return exchange


class FeedBench:
    """Feed requests of each kind against an account whose table and bucket exist.

    Each kind's preconditions are set up outside the recordings; every measured request
    runs in a warm container that has already authenticated its client.
    """

    def __init__(self, api: InProcessApi, *, feed: Any) -> None:
        from offload import auth
        from offload.runtime import get_runtime

        self.api = api
        self.feed = feed
        self.runtime = get_runtime()
        bucket = self.runtime.settings.bucket_name
        if bucket is None:
            raise RuntimeError("feed requests need the bucket: set BUCKET_NAME")
        self.bucket: str = bucket
        self._parts = itertools.count(1)
        self.client_id = f"bench-{secrets.token_hex(4)}"
        api_keys.create_key(
            self.client_id, scopes={auth.SCOPE_FEEDS}, hourly_limit=UNLIMITED, key=FEED_KEY
        )
        # Unique: a container remembers a spent window by client id, beyond one bench's run.
        api_keys.create_key(
            f"bench-limited-{secrets.token_hex(4)}",
            scopes={auth.SCOPE_FEEDS},
            hourly_limit=LIMITED,
            key=LIMITED_KEY,
        )
        # The recorder's invocations, one per S3 event delivered.
        self.recorded: list[Exchange] = []
        self._uploaded: set[str] = set()
        # Cache keys set up for repeated kinds, made on first use.
        self._ready: dict[str, Exchange] = {}
        # The first request of a client in a container looks its key up: not measured.
        self.miss()

    @property
    def file(self) -> str:
        return f"{self.feed.name}.json"

    def get(
        self, part: str, *, key: str = FEED_KEY, headers: Mapping[str, str] | None = None
    ) -> Exchange:
        return self.api.request(
            "GET",
            f"/feeds/{self.file}",
            query=f"part={part}",
            headers={"x-api-key": key, **(headers or {})},
        )

    def miss(self) -> Exchange:
        """A cache key nobody asked for yet: generated, stored and answered inline."""
        exchange = expect(self.get(f"m{next(self._parts)}"), HTTPStatus.OK, "fwd=miss; stored")
        self.record_uploads()
        return exchange

    def record_uploads(self) -> None:
        """Deliver the S3 events of objects not recorded yet, as S3 would."""
        from offload.files import OBJECT_PREFIX

        listed = self.runtime.s3.list_objects_v2(Bucket=self.bucket, Prefix=f"{OBJECT_PREFIX}/")
        for item in listed.get("Contents", []):
            if item["Key"] not in self._uploaded:
                self._uploaded.add(item["Key"])
                self.recorded += self.api.s3_event("ObjectCreated:Put", self.bucket, item["Key"])

    def _fresh(self, name: str, key: str = FEED_KEY) -> Exchange:
        """A cache key whose file is generated, recorded and already hit once (so the
        container remembers its object), made once per name."""
        if name not in self._ready:
            expect(self.get(name, key=key), HTTPStatus.OK, "fwd=miss; stored")
            self.record_uploads()
            self._ready[name] = self.get(name, key=key)
        return self._ready[name]

    def hit(self) -> Exchange:
        expect(self._fresh("hit"), HTTPStatus.TEMPORARY_REDIRECT, "hit")
        return self._downloaded(expect(self.get("hit"), HTTPStatus.TEMPORARY_REDIRECT, "hit"))

    def not_modified(self) -> Exchange:
        etag = expect(self._fresh("hit"), HTTPStatus.TEMPORARY_REDIRECT, "hit").headers["etag"]
        return expect(
            self.get("hit", headers={"if-none-match": etag}), HTTPStatus.NOT_MODIFIED, "hit"
        )

    def stale(self) -> Exchange:
        if "stale" not in self._ready:  # made stale once; it stays so (the rival holds on)
            self._fresh("stale")
            self._make_stale("stale")
        return self._downloaded(
            expect(self.get("stale"), HTTPStatus.TEMPORARY_REDIRECT, "hit; fwd=stale")
        )

    def limited(self) -> Exchange:
        # The client's one request of the window, a miss recorded, then the next ones are over.
        self._fresh("limited", key=LIMITED_KEY)
        refused = self.get("limited", key=LIMITED_KEY)
        if refused.status != HTTPStatus.TOO_MANY_REQUESTS:  # a new window began: spend it
            refused = self.get("limited", key=LIMITED_KEY)
        return expect(refused, HTTPStatus.TOO_MANY_REQUESTS)

    def proxy(self) -> Exchange:
        """A hit whose function fetches the file and returns it through API Gateway."""
        from offload_local.gateway import MAX_RESPONSE_BYTES

        self._fresh("hit")
        with self.api.recorder.recording() as recording:
            hit = expect(self.get("hit"), HTTPStatus.TEMPORARY_REDIRECT, "hit")
            started = time.perf_counter()
            data = self.runtime.s3.get_object(Bucket=self.bucket, Key=self._key_of(hit))
            body = data["Body"].read()
            fetched = time.perf_counter() - started
        if len(body) > MAX_RESPONSE_BYTES:
            raise UnexpectedAnswer("the file is over a Lambda response: it cannot be proxied")
        headers = {name: value for name, value in hit.headers.items() if name != "location"} | {
            "content-type": self.feed.formats["json"]
        }
        wire = headers | {"content-length": str(len(body))}
        return Exchange(
            method=hit.method,
            target=hit.target,
            status=200,
            headers=headers,
            body=body,
            request_bytes=hit.request_bytes,
            response_bytes=http_size(f"{HTTP_VERSION} 200", wire, body),
            seconds=hit.seconds + fetched,
            trace=recording.trace,
        )

    def _make_stale(self, part: str) -> None:
        """Age the file past the feed's max age and let a rival request hold the lock."""
        from offload import locks
        from offload.feeds import REGISTRY
        from offload.feeds.cachekey import parse_feed_request
        from offload.files import Generation
        from offload.table import CacheEntry

        request = parse_feed_request(self.file, f"part={part}", self.client_id, REGISTRY)
        entry = CacheEntry.get(CacheEntry.key_for(request.cache_id), CacheEntry.SORT)
        older = float(entry.generated_at) - self.feed.max_age_seconds - 1
        entry.update(actions=[CacheEntry.generated_at.set(older)])
        now = time.time()
        rival = Generation.start(request, now)
        taken = locks.acquire(
            self.runtime.dynamodb,
            locks.Lease(rival, lease_until=now + RIVAL_LEASE_SECONDS),
            now=now,
            superseded_before=0.0,
        )
        if not taken.acquired:
            raise UnexpectedAnswer("the rival request could not take the rebuild lock")

    def _key_of(self, exchange: Exchange) -> str:
        """The object a signed S3 URL names, virtual-hosted or path-style."""
        path = unquote(urlsplit(exchange.location or "").path).lstrip("/")
        return path.removeprefix(f"{self.bucket}/")

    def _downloaded(self, exchange: Exchange) -> Exchange:
        """The exchange with the size of the file its client fetches next (asked outside
        the recording, as the client's GET goes to S3, not through the function)."""
        head = self.runtime.s3.head_object(Bucket=self.bucket, Key=self._key_of(exchange))
        return _with_download(exchange, int(head["ContentLength"]))


def _with_download(exchange: Exchange, size: int) -> Exchange:
    return replace(exchange, download_bytes=size)


class CollectionBench:
    """Collection reads as a client polls them: pointer, index of its version, a match."""

    def __init__(self, api: InProcessApi, *, history: int = COLLECTION_HISTORY) -> None:
        from offload import auth

        self.api = api
        api_keys.create_key(
            "bench-admin", scopes={auth.SCOPE_ADMIN}, hourly_limit=UNLIMITED, key=ADMIN_KEY
        )
        for number in range(history):
            finished = FIRST_MATCH_AT + timedelta(minutes=number)
            document = {
                "id": f"bench-m{number}",
                "players": [COLLECTION_USER, f"bench-rival-{number}"],
                "finished_at": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            recorded = api.request(
                "POST",
                "/matches",
                headers={"x-api-key": ADMIN_KEY, "content-type": "application/json"},
                body=json.dumps(document).encode(),
            )
            expect(recorded, HTTPStatus.CREATED)
        self.match_id = f"bench-m{history - 1}"

    def version(self, etag: str | None = None) -> Exchange:
        headers = {"if-none-match": etag} if etag else {}
        return self.api.request("GET", f"/users/{COLLECTION_USER}/matches/version", headers=headers)

    def pointer(self) -> Exchange:
        return expect(self.version(), HTTPStatus.OK)

    def pointer_not_modified(self) -> Exchange:
        return expect(self.version(self.pointer().headers["etag"]), HTTPStatus.NOT_MODIFIED)

    def index(self) -> Exchange:
        version = json.loads(self.pointer().body)["version"]
        return expect(
            self.api.request(
                "GET", f"/users/{COLLECTION_USER}/matches/index", query=f"version={version}"
            ),
            HTTPStatus.OK,
        )

    def match(self) -> Exchange:
        return expect(self.api.request("GET", f"/matches/{self.match_id}"), HTTPStatus.OK)
