"""Hit-path CPU: Offload's feeds handler against bare botocore, AWS answers replayed from memory.

    .venv/bin/python bench/cpu.py [--requests 2000] [--warmup 200] [--block 100]
                                  [--profile [--profile-requests 500]] [--show-calls] [--crt]

The goal: handler CPU per warm hit at most 1.3x that of a bare-botocore handler making
the same calls. No emulator may run while the CPU is measured, so:

1. Record. moto in-process; the feeds handler (functions/feeds/feeds.py, loaded as a container
   loads it, with the FeedsFunction's environment from template.yaml) serves a bench feed
   file until it is a warm hit. Every AWS answer of that hit (status, headers, body) is kept
   per service and operation: UpdateItem (rate counter), GetItem (cache entry),
   BatchGetItem (invalidations), HeadObject (the file).
2. Replay. moto stopped; a `before-send` hook on every botocore client involved (the
   runtime's boto3 clients and PynamoDB's, one per model) returns the recorded answer, so
   botocore still builds, signs and parses every request, which is handler CPU, but no
   socket or emulator runs. The replayed hit must answer 307 `Cache-Status: Offload; hit`.
3. Baseline. `BareHandler` makes the same four calls with plain boto3 clients, in the same
   parallel round (a thread pool), presigns one GET and returns an API Gateway answer.
4. Measure. `time.process_time()` (every thread of the process) over blocks of requests,
   the two handlers alternating block by block (ABBA) so that machine noise meets both;
   the medians of per-block CPU and wall time per request, and their ratio.

`--profile` then profiles both handlers' replayed hits (cProfile, the pool's tasks run inline
so that one profiler sees all the work) and lists what Offload, Powertools and PynamoDB spend
themselves, outside botocore's calls and presign, which the bare handler pays too.

Powertools runs as deployed (INFO logs, metrics printed per invocation to a discarded
stdout) except tracing: X-Ray needs Lambda's daemon, so the tracer is disabled. The client
cache is made long-lived: a warm hit authenticates from memory (one key read per
CLIENT_CACHE_SECONDS and container is not a hit's cost). botocore signs in pure Python, as
with the layer, which has no awscrt (`--crt` lets it use awscrt where installed).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import hashlib
import json
import os
import pstats
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from calls import BENCH_FEED, bench_feed

# Offload's modules are imported where they are used: Powertools reads its settings from the
# environment when imported, and `main` sets that environment first.

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
FUNCTION = "FeedsFunction"
GOAL = 1.3

API_KEY = "bench-cpu-key"
CLIENT_ID = "bench-cpu"
HOURLY_LIMIT = 10**9
# The hit's file: its size changes neither the hit's calls nor their answers.
FILE_BYTES = 64 * 1024
PART = "hit"
# Longer than any run: a warm hit finds its client in memory.
CLIENT_CACHE_SECONDS = "86400"
# The hit path's one round, as bench/calls.py counts it.
HIT_CALLS = Counter(
    {
        ("dynamodb", "UpdateItem"): 1,
        ("dynamodb", "GetItem"): 1,
        ("dynamodb", "BatchGetItem"): 1,
        ("s3", "HeadObject"): 1,
    }
)

DEFAULT_REQUESTS = 2000
DEFAULT_WARMUP = 200
DEFAULT_BLOCK = 100
DEFAULT_PROFILE_REQUESTS = 500
PROFILE_LINES = 30
# Whose code the profile's own listings keep: Offload's layer and handler, Powertools, PynamoDB.
OWN_CODE = r"offload/|functions/feeds/|aws_lambda_powertools|pynamodb"

Handler = Callable[[dict, Any], dict]
Key = tuple[str, str]  # (botocore's hyphenised service id, operation): ("dynamodb", "GetItem")


# ---------------------------------------------------------------------------------------
# AWS answers, recorded and replayed through botocore's event hooks
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer of AWS, as botocore received it."""

    status: int
    headers: dict[str, str]
    body: bytes


class _Raw:
    """The raw stream an AWSResponse reads its body from."""

    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


@dataclass
class Tape:
    """AWS answers per service and operation: recorded from moto, replayed to botocore.

    `watch` hooks a client for recording (`after-call` keeps the answer, and
    `before-parameter-build` what was asked) while `recording` is set; `replay_to` hooks a
    client's `before-send`, first, to answer from the tape: nothing is sent. Every hook is
    registered under a unique id, so hooking a client twice is harmless.
    """

    answers: dict[Key, Answer] = field(default_factory=dict)
    asked: dict[Key, dict[str, Any]] = field(default_factory=dict)
    recording: bool = False
    replayed: Counter[Key] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _id: str = field(default_factory=lambda: f"offload-bench-cpu-{random.getrandbits(32)}")

    def watch(self, *clients: Any) -> None:
        """Record what these clients ask and are answered, while `recording`."""
        for client in clients:
            events = client.meta.events
            events.register("before-parameter-build", self._asking, unique_id=f"{self._id}-ask")
            events.register("after-call", self._answered, unique_id=f"{self._id}-answer")

    def unwatch(self, *clients: Any) -> None:
        """Stop recording these clients' calls."""
        for client in clients:
            events = client.meta.events
            events.unregister("before-parameter-build", unique_id=f"{self._id}-ask")
            events.unregister("after-call", unique_id=f"{self._id}-answer")

    def replay_to(self, *clients: Any) -> None:
        """Answer these clients' calls from the tape from now on."""
        for client in clients:
            client.meta.events.register_first(
                "before-send", self._replay, unique_id=f"{self._id}-replay"
            )

    def counted(self) -> Counter[Key]:
        """The calls replayed since the last call, and start counting afresh."""
        with self._lock:
            counted, self.replayed = self.replayed, Counter()
        return counted

    def _asking(
        self, params: Mapping[str, Any], model: Any, context: Mapping[str, Any], **_: Any
    ) -> None:
        if self.recording and not context.get("is_presign_request"):
            self.asked[_key(model)] = json.loads(json.dumps(params, default=repr))

    def _answered(self, http_response: Any, model: Any, **_: Any) -> None:
        if self.recording:
            headers = {name: value for name, value in http_response.headers.items()}
            self.answers[_key(model)] = Answer(
                http_response.status_code, headers, http_response.content
            )

    def _replay(self, request: Any, event_name: str, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        _before_send, service, operation = event_name.split(".")
        answer = self.answers.get((service, operation))
        if answer is None:  # never to the network: the run would measure something else
            raise LookupError(f"no recorded answer for {service} {operation}")
        with self._lock:
            self.replayed[service, operation] += 1
        # botocore takes any mapping of headers (its stubs say http.client's HTTPMessage).
        headers = cast(Any, answer.headers)
        return AWSResponse(request.url, answer.status, headers, _Raw(answer.body))


def _key(model: Any) -> Key:
    return model.service_model.service_id.hyphenize(), model.name


# ---------------------------------------------------------------------------------------
# The two handlers
# ---------------------------------------------------------------------------------------


def hit_event(key: str = API_KEY) -> dict:
    """An API Gateway (HTTP API, payload 2.0) event for the bench feed's hit."""
    event = json.loads((EVENTS / "feed_request.json").read_text())
    path = f"/feeds/{BENCH_FEED}.json"
    query = f"part={PART}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["pathParameters"] = {"file": f"{BENCH_FEED}.json"}
    event["rawQueryString"] = query
    event["queryStringParameters"] = {name: value for name, value in parse_qsl(query)}
    event["headers"]["x-api-key"] = key
    return event


@dataclass(frozen=True, slots=True)
class Layout:
    """What a bare handler knows of the table, the bucket and its client: its own constants."""

    table: str
    bucket: str
    region: str
    clients: Mapping[str, tuple[str, int]]  # API key hash -> (client id, hourly limit)
    shards: int
    window_seconds: int
    signed_url_ttl: int
    max_age_seconds: int
    workers: int  # threads in the pool, as many as Offload's runtime has


def _session_without_powertools() -> Any:
    """A boto3 session whose clients Powertools has not hooked.

    Importing Powertools registers a botocore initializer that adds a `request-created` hook
    (a User-Agent suffix) to every session made after, boto3's default one included: a cost
    of Offload's choice of Powertools that a bare handler does not have.
    """
    import boto3
    import botocore
    import botocore.session
    from aws_lambda_powertools.shared import user_agent

    initializer = getattr(user_agent, "_initializer_botocore_session", None)
    if initializer is not None:
        botocore.unregister_initializer(initializer)
    try:
        return boto3.session.Session(botocore_session=botocore.session.Session())
    finally:
        if initializer is not None:
            botocore.register_initializer(initializer)


class BareHandler:
    """The hit path written with plain boto3 clients: the same four calls in one parallel
    round (rate counter, cache entry, invalidations, HEAD of the remembered object), one
    presigned GET, an API Gateway answer. No framework, no models, no checks beyond the hit."""

    def __init__(self, layout: Layout) -> None:
        from botocore.config import Config

        self.layout = layout
        session = _session_without_powertools()
        # As the runtime's: the same timeouts and retry mode (s3v4 for presigning).
        retries: Any = {"mode": "standard", "total_max_attempts": 3}
        config = Config(connect_timeout=5, read_timeout=5, retries=retries)
        self.dynamodb = session.client("dynamodb", region_name=layout.region, config=config)
        s3_config = config.merge(Config(signature_version="s3v4"))
        self.s3 = session.client("s3", region_name=layout.region, config=s3_config)
        self.pool = ThreadPoolExecutor(max_workers=layout.workers, thread_name_prefix="bare")
        self.known: dict[str, str] = {}  # cache id -> last object key, for the speculative HEAD

    def __call__(self, event: dict, context: Any) -> dict:
        layout = self.layout
        client_id, hourly_limit = layout.clients[
            hashlib.sha256(event["headers"]["x-api-key"].encode()).hexdigest()
        ]
        file = event["pathParameters"]["file"]
        feed, _, fmt = file.partition(".")
        query = urlencode(sorted(parse_qsl(event.get("rawQueryString", ""))))
        cache_id = hashlib.sha256(f"{client_id}:{file}?{query}".encode()).hexdigest()[:32]
        now = time.time()
        window = layout.window_seconds
        limit = max(1, hourly_limit * window // 3600)
        window_start = int(now // window * window)
        shard = random.randrange(layout.shards)
        suffix = f"#{shard}" if shard else ""
        table = layout.table
        guess = self.known.get(cache_id)
        rate = self.pool.submit(
            self.dynamodb.update_item,
            TableName=table,
            Key={"pk": {"S": f"RATE#{client_id}#{window_start}"}, "sk": {"S": "RATE"}},
            # Offload's update and condition, as ratelimit.consume sends them.
            UpdateExpression="ADD #hits :one SET #expires = :expires",
            ConditionExpression="attribute_not_exists(#hits) OR #hits < :limit",
            ExpressionAttributeNames={"#hits": "hits", "#expires": "expires_at"},
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":limit": {"N": str(limit)},
                ":expires": {"N": str(window_start + 2 * window)},
            },
            ReturnValues="UPDATED_NEW",
        )
        entry_read = self.pool.submit(
            self.dynamodb.get_item,
            TableName=table,
            Key={"pk": {"S": f"ENTRY#{cache_id}"}, "sk": {"S": "ENTRY"}},
            ConsistentRead=True,
        )
        scopes = ("global", f"feed#{feed}", f"client#{client_id}")
        coverage_read = self.pool.submit(
            self.dynamodb.batch_get_item,
            RequestItems={
                table: {
                    "Keys": [
                        {"pk": {"S": f"INVALIDATION#{scope}{suffix}"}, "sk": {"S": "INVALIDATION"}}
                        for scope in scopes
                    ],
                    "ConsistentRead": True,
                    "ProjectionExpression": "#hard, #soft",
                    "ExpressionAttributeNames": {"#hard": "hard_at", "#soft": "soft_at"},
                }
            },
        )
        head = (
            self.pool.submit(self.s3.head_object, Bucket=layout.bucket, Key=guess)
            if guess
            else None
        )
        hits = int(rate.result()["Attributes"]["hits"]["N"])
        entry = entry_read.result()["Item"]
        invalidations = coverage_read.result()["Responses"].get(table, [])
        object_key = entry["object_key"]["S"]
        if head is None or object_key != guess:
            head = self.pool.submit(self.s3.head_object, Bucket=layout.bucket, Key=object_key)
        head.result()
        self.known[cache_id] = object_key
        generated_at = float(entry["generated_at"]["N"])
        invalidated = max(
            (
                float(item[name]["N"])
                for item in invalidations
                for name in ("hard_at", "soft_at")
                if name in item
            ),
            default=0.0,
        )
        if generated_at <= invalidated or now - generated_at >= layout.max_age_seconds:
            raise AssertionError("the bare handler serves hits only")
        generation_id = entry["generation_id"]["S"]
        day = time.strftime("%Y-%m-%d", time.gmtime(generated_at))
        content_type = entry["content_type"]["S"]
        url = self.s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": layout.bucket,
                "Key": object_key,
                "ResponseContentDisposition": f'attachment; filename="{feed}-{day}.{fmt}"',
                "ResponseContentType": content_type,
            },
            ExpiresIn=layout.signed_url_ttl,
        )
        reset = max(1, int(window_start + window - now))
        return {
            "statusCode": HTTPStatus.TEMPORARY_REDIRECT,
            "headers": {
                "Location": url,
                "Cache-Status": "Offload; hit",
                "Cache-Control": "private, no-store",
                "ETag": f'"{generation_id}"',
                "RateLimit-Limit": str(limit),
                "RateLimit-Remaining": str(max(0, limit - hits)),
                "RateLimit-Reset": str(reset),
            },
            "body": "",
            "isBase64Encoded": False,
        }


# ---------------------------------------------------------------------------------------
# Recording the hit, then replaying it
# ---------------------------------------------------------------------------------------


@dataclass
class Setup:
    """Both handlers ready to serve the same replayed hit."""

    offload: Handler
    bare: BareHandler
    event: dict
    context: Any
    tape: Tape
    pool: ThreadPoolExecutor  # the Offload runtime's


def environment(function: Any, region: str, *, crt: bool = False) -> dict[str, str]:
    """The function's environment as template.yaml sets it, fake credentials, no X-Ray.

    botocore signs with awscrt when it is installed (this venv has it, for the tools); the
    layer's requirements do not bring it, so unless `crt` botocore signs in pure Python, as
    it does in Lambda. (Read when botocore is imported.)
    """
    return {
        **function.environment,
        "BOTO_DISABLE_CRT": "false" if crt else "true",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "CLIENT_CACHE_SECONDS": CLIENT_CACHE_SECONDS,
    }


def is_hit(response: dict) -> bool:
    """Whether a handler's answer is the hit: 307 with Offload's `Cache-Status: hit`."""
    headers = response.get("headers") or {}
    return (
        response.get("statusCode") == HTTPStatus.TEMPORARY_REDIRECT
        and headers.get("Cache-Status") == "Offload; hit"
    )


def set_up(stack: Any, function: Any, feed: Any) -> Setup:
    """Record the Offload handler's warm hit on moto, then point every client at the tape."""
    from moto import mock_aws
    from pynamodb.signals import pre_dynamodb_send

    from offload import api_keys, auth
    from offload.files import OBJECT_PREFIX, Generation
    from offload.invalidation_scopes import Scope
    from offload.recorder import record_created
    from offload.runtime import POOL_WORKERS, get_runtime
    from offload.table import Invalidation
    from offload_local.lambdas import LocalContext, load_handler
    from offload_local.resources import create_resources

    tape = Tape()
    pynamodb: dict[int, Any] = {}

    def on_pynamodb_send(connection: Any, **_: Any) -> None:
        # PynamoDB makes its own botocore client per model's connection: hook each as it sends.
        pynamodb.setdefault(id(connection.client), connection.client)
        tape.watch(connection.client)

    event = hit_event()
    context = LocalContext(
        function.logical_id, invoked_function_arn=function.arn, timeout_seconds=function.timeout
    )
    pre_dynamodb_send.connect(on_pynamodb_send)
    try:
        with mock_aws():
            create_resources(stack)
            runtime = get_runtime()
            tape.watch(runtime.s3, runtime.dynamodb)
            api_keys.create_key(
                CLIENT_ID, scopes={auth.SCOPE_FEEDS}, hourly_limit=HOURLY_LIMIT, key=API_KEY
            )
            # Every scope covering the hit was invalidated once, before the file was made:
            # the batch read finds its three items, as it does once a deployment has run a
            # while (an empty answer would flatter PynamoDB, which builds a model per item).
            invalidated = time.time() - 60
            for scope in Scope.covering(feed.name, CLIENT_ID):
                for shard in range(Invalidation.shards()):
                    key = Invalidation.key_for(scope.key, shard)
                    marks = {"hard_at": invalidated, "soft_at": invalidated}
                    Invalidation(key, Invalidation.SORT, **marks).save()
            offload = load_handler(function)
            bucket = runtime.settings.bucket_name
            # A miss: generated and stored; S3's event records it; a hit HEADs it after
            # reading the entry, and the container remembers it; then the warm hit.
            miss = offload(event, context)
            if miss["statusCode"] != HTTPStatus.OK:
                raise AssertionError(f"the first request should generate the file: {miss}")
            listed = runtime.s3.list_objects_v2(Bucket=bucket, Prefix=f"{OBJECT_PREFIX}/")
            for item in listed["Contents"]:
                if Generation.of_object(item["Key"]):
                    record_created(runtime.s3, bucket, item["Key"])
            for _ in range(2):
                offload(event, context)
            tape.recording = True
            recorded = offload(event, context)
            tape.recording = False
    finally:
        pre_dynamodb_send.disconnect(on_pynamodb_send)
    if not is_hit(recorded):
        raise AssertionError(f"the recorded request is not a hit: {recorded}")
    if Counter(tape.answers.keys()) != HIT_CALLS:
        raise AssertionError(f"a warm hit should make {dict(HIT_CALLS)}, not {tape.answers}")
    clients = (runtime.s3, runtime.dynamodb, *pynamodb.values())
    tape.unwatch(*clients)
    tape.replay_to(*clients)

    settings = runtime.settings
    layout = Layout(
        table=settings.table_name,
        bucket=bucket or "",
        region=stack.region,
        clients={auth.hash_key(API_KEY): (CLIENT_ID, HOURLY_LIMIT)},
        shards=settings.invalidation_shards,
        window_seconds=settings.rate_limit_window,
        signed_url_ttl=settings.signed_url_ttl,
        max_age_seconds=feed.max_age_seconds,
        workers=POOL_WORKERS,
    )
    bare = BareHandler(layout)
    tape.replay_to(bare.dynamodb, bare.s3)
    return Setup(offload, bare, event, context, tape, runtime.pool)


def same_calls(setup: Setup) -> dict[Key, tuple[Any, Any]]:
    """What each handler asked per call, Offload's and the bare one's, made comparable:
    PynamoDB's `ReturnConsumedCapacity` dropped, invalidation keys named by scope (each
    request reads a random shard). Raises if the two differ."""
    from offload.table import Invalidation

    probe = Tape()
    probe.watch(setup.bare.dynamodb, setup.bare.s3)
    probe.recording = True
    setup.bare(setup.event, setup.context)
    probe.unwatch(setup.bare.dynamodb, setup.bare.s3)

    def comparable(key: Key, asked: dict[str, Any]) -> dict[str, Any]:
        asked = {name: value for name, value in asked.items() if name != "ReturnConsumedCapacity"}
        if key == ("dynamodb", "BatchGetItem"):
            for table in asked["RequestItems"].values():
                scopes = (Invalidation.scope_of(k["pk"]["S"])[0] for k in table["Keys"])
                table["Keys"] = sorted(scopes)
        return asked

    pairs = {
        key: (comparable(key, setup.tape.asked[key]), comparable(key, probe.asked.get(key, {})))
        for key in HIT_CALLS
    }
    differ = [key for key, (offload, bare) in pairs.items() if offload != bare]
    if differ or probe.asked.keys() != setup.tape.asked.keys():
        raise AssertionError(f"the bare handler asks otherwise: {differ} {pairs}")
    return pairs


def same_redirect(offload: dict, bare: dict) -> None:
    """Both redirect to the same object, signing the same query parameters and the same
    response-content-* overrides (credentials, date and signature aside)."""
    urls = [urlsplit(answer["headers"]["Location"]) for answer in (offload, bare)]
    queries = [parse_qs(url.query) for url in urls]
    signed = [
        (sorted(query), {k: v for k, v in query.items() if k.startswith("response-")})
        for query in queries
    ]
    if urls[0].path != urls[1].path or signed[0] != signed[1]:
        raise AssertionError(f"the redirects differ: {urls}")


# ---------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------


@dataclass
class Figures:
    """Per-request CPU and wall seconds of one handler, one value per block."""

    name: str
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)

    @property
    def median_wall(self) -> float:
        return statistics.median(self.wall)

    def cpu_quartiles(self) -> tuple[float, float]:
        if len(self.cpu) < 2:
            return self.cpu[0], self.cpu[0]
        quartiles = statistics.quantiles(self.cpu, n=4)
        return quartiles[0], quartiles[2]


def run_block(handler: Handler, setup: Setup, count: int) -> tuple[float, float]:
    """(CPU, wall) seconds per request of `count` hits, every answer and call checked after."""
    event, context = setup.event, setup.context
    gc.collect()  # each block starts without the previous one's garbage
    setup.tape.counted()
    answers = []
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        answers.append(handler(event, context))
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    if not all(is_hit(answer) for answer in answers):
        wrong = next(answer for answer in answers if not is_hit(answer))
        raise AssertionError(f"a measured request was not a hit: {wrong}")
    calls = setup.tape.counted()
    expected = Counter({key: n * count for key, n in HIT_CALLS.items()})
    if calls != expected:
        raise AssertionError(f"{count} hits should make {dict(expected)}, not {dict(calls)}")
    return cpu / count, wall / count


def measure(
    handlers: Mapping[str, Handler], setup: Setup, *, requests: int, warmup: int, block: int
) -> list[Figures]:
    """Warm each handler up, then alternate blocks (A B B A A B ...): a slow spell of the
    machine lands on both."""
    for handler in handlers.values():
        if warmup:
            run_block(handler, setup, warmup)
    figures = {name: Figures(name) for name in handlers}
    names = list(handlers)
    for number in range(max(1, requests // block)):
        for name in names if number % 2 == 0 else reversed(names):
            cpu, wall = run_block(handlers[name], setup, block)
            figures[name].cpu.append(cpu)
            figures[name].wall.append(wall)
    return list(figures.values())


def versions() -> str:
    """What the figures depend on: interpreter, machine, SDK and libraries, signer."""
    import platform
    from importlib.metadata import version

    packages = ("botocore", "boto3", "pynamodb", "aws-lambda-powertools")
    listed = ", ".join(f"{name} {version(name)}" for name in packages)
    from botocore.compat import HAS_CRT

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs"
    signing = "SigV4 by awscrt" if HAS_CRT else "SigV4 in pure Python (no awscrt, as in the layer)"
    return f"Python {platform.python_version()} on {machine}; {listed}; {signing}"


def report(offload: Figures, bare: Figures, *, requests: int, warmup: int, block: int) -> str:
    """The figures as a Markdown table, their ratio and the goal."""

    def us(seconds: float) -> str:
        return f"{seconds * 1e6:,.0f}"

    rows = []
    for figures in (offload, bare):
        low, high = figures.cpu_quartiles()
        rows.append(
            f"| {figures.name} | {us(figures.median_cpu)} | {us(low)}-{us(high)} "
            f"| {us(figures.median_wall)} |"
        )
    cpu_ratio = offload.median_cpu / bare.median_cpu
    wall_ratio = offload.median_wall / bare.median_wall
    rows.append(f"| ratio Offload / bare | **{cpu_ratio:.2f}x** | | {wall_ratio:.2f}x |")
    # Blocks of the same number ran back to back: their ratios cancel slow drifts of the load.
    paired = statistics.median(a / b for a, b in zip(offload.cpu, bare.cpu, strict=True))
    verdict = "met" if cpu_ratio <= GOAL else "not met"
    blocks = max(1, requests // block)
    return "\n".join(
        [
            f"Warm hit, AWS answers replayed from memory (no emulator, no socket): {blocks} "
            f"blocks of {block} requests per handler after {warmup} warm-up, alternating; "
            "medians of the per-block figures. CPU is time.process_time() (all threads).",
            versions(),
            "",
            "| handler | CPU µs / request | CPU p25-p75 | wall µs / request |",
            "|---|---:|---:|---:|",
            *rows,
            "",
            f"Median of the CPU ratios of blocks run back to back: {paired:.2f}x.",
            f"Goal (hit path): Offload's CPU per warm hit ≤ {GOAL}x bare botocore's: "
            f"{verdict} ({cpu_ratio:.2f}x).",
        ]
    )


# ---------------------------------------------------------------------------------------
# Profiling
# ---------------------------------------------------------------------------------------

# Where botocore's own work on a call begins: every call (boto3's and PynamoDB's) and the presign.
BOTOCORE_ENTRIES = (
    ("botocore/client.py", "_make_api_call"),
    ("botocore/signers.py", "generate_presigned_url"),
)


@contextlib.contextmanager
def inline(pool: ThreadPoolExecutor) -> Iterator[None]:
    """While the block runs, what is submitted to `pool` runs at once in the submitting thread.

    One profiler, in one thread, then sees all of a request's work with its own fast clock;
    profiling the pool's threads instead would charge their waits for the interpreter lock
    to whatever they were running. Handing tasks to threads is left out: both handlers pay it.
    """

    def submit(task: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(task(*args, **kwargs))
        except BaseException as exc:  # as a pool's future holds it, for `result()` to raise
            future.set_exception(exc)
        return future

    setattr(pool, "submit", submit)  # noqa: B010 - an instance attribute, removed after
    try:
        yield
    finally:
        delattr(pool, "submit")


def profile(
    handler: Handler, setup: Setup, pool: ThreadPoolExecutor, requests: int
) -> pstats.Stats:
    """cProfile of `requests` replayed hits, the pool's tasks run inline."""
    profiler = cProfile.Profile()
    with inline(pool):
        for _ in range(requests):
            if not is_hit(handler(setup.event, setup.context)):  # checked as measured ones
                raise AssertionError("a profiled request was not a hit")
        setup.tape.counted()
        profiler.enable()
        for _ in range(requests):
            handler(setup.event, setup.context)
        profiler.disable()
    calls = setup.tape.counted()
    if calls != Counter({key: n * requests for key, n in HIT_CALLS.items()}):
        raise AssertionError(f"the profiled hits made {dict(calls)}")
    return pstats.Stats(profiler)


def where(filename: str) -> str:
    """A profile entry's file, from its package or the repository."""
    for marker in ("site-packages/", f"{ROOT}/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1].lstrip("0123456789./")
    return filename


def package(filename: str) -> str:
    """Whose code a profile entry is: a distribution's, Offload's, the bench's or Python's."""
    if filename.startswith("~") or filename.startswith("<"):
        return "(built-in, C)"
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if filename.startswith(f"{ROOT}/"):
        return (
            "offload (layer, handler)"
            if "/offload/" in filename or "/functions/" in filename
            else "bench"
        )
    return "stdlib"


def top(
    stats: pstats.Stats,
    requests: int,
    *,
    sort: str,
    lines: int,
    restrict: str | None = None,
    beneath: Mapping[Entry, float] | None = None,
) -> str:
    """The `lines` costliest entries (µs per request) by `sort`: "self", "cumulative", or
    (with `beneath`, botocore's time under each entry) "outside" botocore's calls."""
    import re

    entries = []
    raw: dict[Entry, Any] = stats.stats  # type: ignore[attr-defined]
    for entry, (_, calls, own, cumulative, _) in raw.items():
        if restrict is None or re.search(restrict, entry[0]):
            outside = max(0.0, cumulative - beneath[entry]) if beneath is not None else 0.0
            named = f"{where(entry[0])}:{entry[1]}({entry[2]})"
            entries.append((own, cumulative, outside, calls, named))
    index = {"self": 0, "cumulative": 1, "outside": 2}[sort]
    entries.sort(key=lambda entry: entry[index], reverse=True)
    extra = beneath is not None
    rows = [
        f"| {own / requests * 1e6:,.1f} | {cumulative / requests * 1e6:,.1f} "
        + (f"| {outside / requests * 1e6:,.1f} " if extra else "")
        + f"| {calls / requests:g} | `{named}` |"
        for own, cumulative, outside, calls, named in entries[:lines]
    ]
    header = "| self µs | cumulative µs |" + (" outside botocore µs |" if extra else "")
    rule = "|---:|---:|" + ("---:|" if extra else "")
    return "\n".join([f"{header} calls | function |", f"{rule}---:|---|", *rows])


def botocore_beneath(stats: pstats.Stats) -> dict[Entry, float]:
    """Per entry, the time spent in botocore's calls and presigns beneath it.

    A callee's share is its botocore time in proportion to the time the caller spent in it
    (exact where a function's calls all cost alike, as here)."""
    raw: dict[Entry, Any] = stats.stats  # type: ignore[attr-defined]
    callees: dict[Entry, dict[Entry, Any]] = {}
    for callee, (_, _, _, _, callers) in raw.items():
        for caller, edge in callers.items():  # edge: (calls, primitive calls, self, cumulative)
            callees.setdefault(caller, {})[callee] = edge
    memo: dict[Entry, float] = {}

    def beneath(entry: Entry, seen: set[Entry]) -> tuple[float, bool]:
        """(botocore time beneath `entry`, whether no recursion cut the count short: only a
        full count is kept, as a cut one depends on where the walk began)."""
        if _botocore_entry(entry):
            return float(raw[entry][3]), True
        if entry in memo:
            return memo[entry], True
        if entry in seen:  # recursion: counted where it began
            return 0.0, False
        seen.add(entry)
        total, full = 0.0, True
        for callee, edge in callees.get(entry, {}).items():
            cumulative = raw[callee][3]
            if cumulative > 0:
                below, complete = beneath(callee, seen)
                total += below * min(1.0, edge[3] / cumulative)
                full = full and complete
        seen.discard(entry)
        if full:
            memo[entry] = total
        return total, full

    return {entry: beneath(entry, set())[0] for entry in raw}


def _botocore_entry(entry: Entry) -> bool:
    return any(entry[0].endswith(path) and entry[2] == name for path, name in BOTOCORE_ENTRIES)


# Code that is nobody's cost of its own: charged to the package that called it.
UNOWNED = frozenset({"stdlib", "(built-in, C)"})
Entry = tuple[str, int, str]  # pstats' (file, line, function)


def by_package(stats: pstats.Stats, requests: int) -> str:
    """Self time per package, and with the standard library's and C functions' time charged
    to the packages that called them (in proportion to the time each caller spent there)."""
    raw: dict[Entry, Any] = stats.stats  # type: ignore[attr-defined]
    memo: dict[Entry, Counter[str]] = {}
    own: Counter[str] = Counter()
    charged: Counter[str] = Counter()
    for entry, (_, _, self_time, _, callers) in raw.items():
        name = package(entry[0])
        own[name] += self_time
        if name not in UNOWNED or not callers:
            charged[name] += self_time
            continue
        for caller, edge in callers.items():  # edge: (calls, primitive calls, self, cumulative)
            for owner, share in _owners(raw, caller, memo, set()).items():
                charged[owner] += edge[2] * share
    total = sum(own.values())
    rows = [
        f"| {name} | {own[name] / requests * 1e6:,.0f} | {spent / requests * 1e6:,.0f} "
        f"| {spent / total:.0%} |"
        for name, spent in (charged + Counter({name: 0.0 for name in own})).most_common()
        if max(spent, own[name]) / total >= 0.005
    ]
    header = "| package | self µs | with stdlib and C charged to callers, µs | share |"
    return "\n".join([header, "|---|---:|---:|---:|", *rows])


def _owners(
    raw: dict[Entry, Any], entry: Entry, memo: dict[Entry, Counter[str]], seen: set[Entry]
) -> Counter[str]:
    """Which packages a function's time belongs to: its own, or its callers' (recursively)."""
    name = package(entry[0])
    if name not in UNOWNED:
        return Counter({name: 1.0})
    if entry in memo:
        return memo[entry]
    callers = raw[entry][4] if entry in raw else {}
    weight = sum(edge[3] for edge in callers.values())
    if entry in seen or weight <= 0:
        return Counter({name: 1.0})
    seen.add(entry)
    owners: Counter[str] = Counter()
    for caller, edge in callers.items():
        for owner, share in _owners(raw, caller, memo, seen).items():
            owners[owner] += share * edge[3] / weight
    seen.discard(entry)
    memo[entry] = owners
    return owners


def in_botocore(stats: pstats.Stats, requests: int) -> tuple[float, float]:
    """(profiled CPU per request, of which inside botocore's calls and presign)."""
    raw: dict[Entry, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(value[2] for value in raw.values())
    # The outermost of each name (signers.py has a presign function and a method of that name).
    outermost: dict[tuple[str, str], float] = {}
    for entry, (_, _, _, cumulative, _) in raw.items():
        if _botocore_entry(entry):
            name = (entry[0].rsplit("site-packages/", 1)[-1], entry[2])
            outermost[name] = max(outermost.get(name, 0.0), cumulative)
    return total / requests, sum(outermost.values()) / requests


def profile_report(setup: Setup, requests: int) -> str:
    """Profile both handlers; what Offload's spends, where, and outside botocore."""
    offload = profile(setup.offload, setup, setup.pool, requests)
    bare = profile(setup.bare, setup, setup.bare.pool, requests)
    beneath, lines = botocore_beneath(offload), PROFILE_LINES
    split = []
    for name, stats in (("Offload", offload), ("bare botocore", bare)):
        total, inside = in_botocore(stats, requests)
        split.append(
            f"| {name} | {total * 1e6:,.0f} | {inside * 1e6:,.0f} | {(total - inside) * 1e6:,.0f} |"
        )
    return "\n\n".join(
        [
            f"Profile of {requests} replayed hits per handler after as many unprofiled ones "
            "(cProfile; pool tasks run inline; the profiler's own cost inflates every figure: "
            "compare them with each other). µs per request:",
            "\n".join(
                [
                    "| handler | profiled µs / request | in botocore calls and presign | outside |",
                    "|---|---:|---:|---:|",
                    *split,
                ]
            ),
            "Offload's handler by package (µs per request):",
            by_package(offload, requests),
            f"Offload, top {PROFILE_LINES} by cumulative time:",
            top(offload, requests, sort="cumulative", lines=PROFILE_LINES),
            f"Offload, top {PROFILE_LINES} by self time:",
            top(offload, requests, sort="self", lines=PROFILE_LINES),
            f"Own code (Offload, Powertools, PynamoDB), top {PROFILE_LINES} by cumulative time "
            "outside botocore's calls and presign (what the bare handler does not pay):",
            top(offload, requests, sort="outside", lines=lines, restrict=OWN_CODE, beneath=beneath),
            f"Own code (Offload, Powertools, PynamoDB), top {PROFILE_LINES} by self time:",
            top(offload, requests, sort="self", lines=lines, restrict=OWN_CODE, beneath=beneath),
        ]
    )


def main() -> None:
    """Record, replay, measure; then profile if asked."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS, help="per handler")
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="per handler")
    parser.add_argument("--block", type=int, default=DEFAULT_BLOCK, help="requests per block")
    parser.add_argument("--profile", action="store_true", help="then profile both handlers")
    parser.add_argument("--profile-requests", type=int, default=DEFAULT_PROFILE_REQUESTS)
    parser.add_argument("--show-calls", action="store_true", help="print what each handler asks")
    parser.add_argument("--crt", action="store_true", help="sign with awscrt if installed")
    args = parser.parse_args()

    from offload_local.template import Stack, load

    stack = Stack(load())
    function = {f.logical_id: f for f in stack.functions()}[FUNCTION]
    os.environ.update(environment(function, stack.region, crt=args.crt))
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL") or n == "AWS_PROFILE"]:
        os.environ.pop(name)

    # Powertools prints each invocation's metrics: written, as in Lambda, but not shown.
    with open(os.devnull, "w") as devnull, bench_feed(FILE_BYTES) as feed:
        with contextlib.redirect_stdout(devnull):
            setup = set_up(stack, function, feed)
            offload, bare = (
                setup.offload(setup.event, setup.context),
                setup.bare(setup.event, setup.context),
            )
            asked = same_calls(setup)
        if not (is_hit(offload) and is_hit(bare)):
            raise AssertionError(f"a replayed request is not a hit: {offload} {bare}")
        same_redirect(offload, bare)
        if args.show_calls:
            for (service, operation), pair in asked.items():
                print(f"{service} {operation}, Offload then bare:")
                for side in pair:
                    print(json.dumps(side, sort_keys=True))
            print()
        handlers: dict[str, Handler] = {
            "Offload feeds handler": setup.offload,
            "bare botocore": setup.bare,
        }
        with contextlib.redirect_stdout(devnull):
            first, second = measure(
                handlers, setup, requests=args.requests, warmup=args.warmup, block=args.block
            )
        print(report(first, second, requests=args.requests, warmup=args.warmup, block=args.block))
        if args.profile:
            with contextlib.redirect_stdout(devnull):
                text = profile_report(setup, args.profile_requests)
            print()
            print(text)


if __name__ == "__main__":
    main()
