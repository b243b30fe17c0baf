"""Faults injected at the botocore layer: what users see and what is stored when AWS fails.

Every botocore client in the process gets the hooks, whoever made it (the runtime's boto3
clients, PynamoDB's model connections, the collection store's connection), so the tests
reach the code only through the Lambda handlers and read the outcome from the table.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from typing import Any

import boto3
import botocore.session
import pytest
from boto3.dynamodb.conditions import Attr
from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from botocore.retries.standard import ExponentialBackoff

from offload import invalidation
from offload.config import LOCK_LEASE_SECONDS, get_settings
from offload.feeds.outcome import Outcome
from tests.support import (
    STACK,
    TABLE_NAME,
    Api,
    cache_status,
    feed_event,
    match,
    problem_of,
    reset_container_state,
    s3_event,
    stored_generations,
)
from tests.support.feeds import download

Params = dict[str, Any]
PROBE = "/feeds/probe.json"
HIT, STORED = Outcome.HIT, Outcome.STORED
COLLAPSED, STALE_ON_ERROR = Outcome.COLLAPSED, Outcome.STALE_ON_ERROR


@dataclass(frozen=True)
class ServiceError:
    """An error answer from AWS, as the SDK sees it once its retries are spent."""

    status: int
    code: str
    reasons: tuple[str, ...] = ()  # a cancelled transaction's reason per item

    def response(self) -> tuple[AWSResponse, dict]:
        parsed: dict[str, Any] = {
            "Error": {"Code": self.code, "Message": f"injected {self.code}"},
            "ResponseMetadata": {"HTTPStatusCode": self.status, "HTTPHeaders": {}},
        }
        if self.reasons:
            parsed["CancellationReasons"] = [{"Code": reason} for reason in self.reasons]
        return AWSResponse("https://injected.invalid", self.status, {}, None), parsed


# DynamoDB's throttles, S3's, and a cancelled transaction whose cause is a throttle.
THROUGHPUT_EXCEEDED = ServiceError(400, "ProvisionedThroughputExceededException")
THROTTLING = ServiceError(400, "ThrottlingException")
TRANSACTION_THROTTLED = ServiceError(
    400, "TransactionCanceledException", reasons=("None", "ThrottlingError")
)
SLOW_DOWN = ServiceError(503, "SlowDown")
# A HEAD answer has no body, so botocore names its error after the status code.
HEAD_SLOW_DOWN = ServiceError(503, "503")
HEAD_INTERNAL_ERROR = ServiceError(500, "500")
# Raised by the HTTP layer on every attempt, so the SDK retries them before giving up.
READ_TIMEOUT = ReadTimeoutError
CONNECT_TIMEOUT = ConnectTimeoutError

Error = ServiceError | type[ReadTimeoutError] | type[ConnectTimeoutError]


@dataclass
class Fault:
    """`operation` ("dynamodb.UpdateItem") fails with `error` for the calls `when` picks.

    A service error answers at `before-call`, above the SDK's retries: it stands for one
    that outlasted all of them, and moto never applies the call. A timeout is raised at
    `before-send`, on every attempt the SDK makes. `calls` counts the calls that failed,
    `attempts` the HTTP attempts among them.
    """

    operation: str
    error: Error
    times: int | None = None
    when: Callable[[Params], bool] | None = None
    calls: int = 0
    attempts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def _mark(self) -> str:
        return f"injected-fault-{id(self)}"

    def clear(self) -> None:
        """No further call fails."""
        with self._lock:
            self.times = self.calls

    def install(self, client: BaseClient) -> None:
        events = client.meta.events
        for stage, hook in self._hooks().items():
            events.register(f"{stage}.{self.operation}", hook, unique_id=f"{self._mark}-{stage}")

    def uninstall(self, client: BaseClient) -> None:
        events = client.meta.events
        for stage in self._hooks():
            events.unregister(f"{stage}.{self.operation}", unique_id=f"{self._mark}-{stage}")

    def _hooks(self) -> dict[str, Callable[..., Any]]:
        return {
            "before-parameter-build": self._choose,
            "before-call": self._answer,
            "before-send": self._raise,
        }

    def _choose(self, params: Params, context: dict, **_: Any) -> None:
        if self.when is not None and not self.when(params):
            return
        with self._lock:
            if self.times is not None and self.calls >= self.times:
                return
            self.calls += 1
        context[self._mark] = True

    def _answer(self, context: dict, **_: Any) -> tuple[AWSResponse, dict] | None:
        if context.get(self._mark) and isinstance(self.error, ServiceError):
            return self.error.response()
        return None

    def _raise(self, request: Any, **_: Any) -> None:
        if (request.context or {}).get(self._mark) and not isinstance(self.error, ServiceError):
            with self._lock:
                self.attempts += 1
            raise self.error(endpoint_url=request.url)


class Faults:
    """Installs faults on every botocore client: those alive now and those made later."""

    def __init__(self) -> None:
        # Clients made before the test (a handler's runtime, PynamoDB's connections) too.
        self._clients: weakref.WeakSet[BaseClient] = weakref.WeakSet(
            obj for obj in gc.get_objects() if issubclass(type(obj), BaseClient)
        )
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def __call__(
        self,
        operation: str,
        error: Error,
        *,
        times: int | None = None,
        when: Callable[[Params], bool] | None = None,
    ) -> Fault:
        fault = Fault(operation, error, times, when)
        with self._lock:
            self._faults.append(fault)
            clients = list(self._clients)
        for client in clients:
            fault.install(client)
        return fault

    def track(self, client: BaseClient) -> BaseClient:
        with self._lock:
            self._clients.add(client)
            faults = list(self._faults)
        for fault in faults:
            fault.install(client)
        return client

    def remove(self) -> None:
        for client in list(self._clients):
            for fault in self._faults:
                fault.uninstall(client)


@pytest.fixture
def fail(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Faults]:
    """`fail("dynamodb.UpdateItem", THROTTLING, when=touching("RATE#"), times=1)` makes
    that call fail (every time, or `times` times) on every client, and returns the Fault."""
    faults = Faults()
    create_client = botocore.session.Session.create_client

    def create_tracked_client(session: botocore.session.Session, *args: Any, **kwargs: Any):
        return faults.track(create_client(session, *args, **kwargs))

    monkeypatch.setattr(botocore.session.Session, "create_client", create_tracked_client)
    # The SDK still makes every attempt, without sleeping up to 3 s between them.
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)
    yield faults
    faults.remove()


def partitions(params: Params) -> set[str]:
    """The partition keys a DynamoDB call names, in keys, items, batches or transactions."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("pk"), dict):
                found.add(node["pk"].get("S", ""))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(params)
    return found


def touching(prefix: str) -> Callable[[Params], bool]:
    """Picks the DynamoDB calls on an item whose partition key starts with `prefix`."""
    return lambda params: any(key.startswith(prefix) for key in partitions(params))


THROTTLED_OR_TIMED_OUT = [
    pytest.param(THROUGHPUT_EXCEEDED, id="throttled"),
    pytest.param(READ_TIMEOUT, id="timed-out"),
]


# --- what the tests read back --------------------------------------------------------------


def items(prefix: str) -> list[dict[str, Any]]:
    """The table's items whose partition key starts with `prefix`, as stored."""
    table = boto3.resource("dynamodb").Table(TABLE_NAME)
    scan: dict[str, Any] = {"FilterExpression": Attr("pk").begins_with(prefix)}
    found: list[dict[str, Any]] = []
    while True:
        page = table.scan(ConsistentRead=True, **scan)
        found += page["Items"]
        if "LastEvaluatedKey" not in page:
            return found
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def objects() -> set[str]:
    """The generated files in the bucket."""
    return set(stored_generations())


def recorded_objects() -> set[str]:
    """What the cache entries point at; each must be a file that exists."""
    pointed = {entry["object_key"] for entry in items("ENTRY#")}
    assert pointed <= objects(), "a cache entry points at a missing object"
    return pointed


def counted() -> int:
    """Requests the rate counters hold, all clients and windows together."""
    return sum(int(counter["hits"]) for counter in items("RATE#"))


def assert_retry_later(response: dict, fault: Fault) -> None:
    """The fault's doing: a 503 problem that says when to retry, and never a redirect."""
    assert fault.calls, "the fault never fired"
    assert response["statusCode"] == HTTPStatus.SERVICE_UNAVAILABLE, response
    problem_of(response)
    assert response["headers"]["Retry-After"] == str(get_settings().retry_after_seconds)
    assert "Location" not in response["headers"]


def assert_feed_unavailable(response: dict, fault: Fault, *, metered: bool) -> None:
    """`assert_retry_later`, with the RateLimit headers once the request was counted."""
    assert_retry_later(response, fault)
    assert ("RateLimit-Remaining" in response["headers"]) is metered


@dataclass(frozen=True)
class Recorded:
    """A file generated for a client's key, recorded by the upload recorder."""

    key: str
    client_id: str
    body: bytes


@pytest.fixture
def recorded(call_feed, make_key, probe, deliver_s3_events) -> Recorded:
    key, client_id = make_key()
    first = call_feed(PROBE, key=key)
    assert cache_status(first["headers"]) == STORED
    assert deliver_s3_events() == 1
    return Recorded(key, client_id, first["body"].encode())


# --- feeds: DynamoDB on each step of a request ----------------------------------------------

HIT_STEPS = {
    # step: the call it makes, on which items, and whether the request was counted before it
    # A container's first look at a key also records its last use: an UpdateItem.
    "auth": ("dynamodb.UpdateItem", "KEY#", False),
    "rate-limit": ("dynamodb.UpdateItem", "RATE#", False),
    "cache-entry": ("dynamodb.GetItem", "ENTRY#", True),
    "invalidations": ("dynamodb.BatchGetItem", "INVALIDATION#", True),
}


@pytest.mark.parametrize("error", THROTTLED_OR_TIMED_OUT)
@pytest.mark.parametrize("step", HIT_STEPS)
def test_a_failing_step_of_a_hit_is_a_503_never_a_redirect(
    step, error, fail, call_feed, make_key, recorded
):
    # GIVEN a recorded file, a warm container that knows it, and a key it has not seen yet
    operation, prefix, metered = HIT_STEPS[step]
    key, _ = make_key(client_id=recorded.client_id)
    # WHEN one step of the request fails, beyond the SDK's retries
    fault = fail(operation, error, when=touching(prefix))
    response = call_feed(PROBE, key=key)
    # THEN the client is told to retry, with its RateLimit headers if it was counted
    assert_feed_unavailable(response, fault, metered=metered)
    assert counted() == 1 + metered
    # and once AWS has recovered, the same request is a hit
    fault.clear()
    assert cache_status(call_feed(PROBE, key=key)["headers"]) == HIT


@pytest.mark.parametrize("error", THROTTLED_OR_TIMED_OUT)
def test_a_failing_lock_write_is_a_503_that_blocks_no_one(error, fail, call_feed, make_key, probe):
    # GIVEN a key with nothing generated yet
    key, _ = make_key()
    # WHEN taking the rebuild lock fails
    fault = fail("dynamodb.PutItem", error, when=touching("LOCK#"))
    response = call_feed(PROBE, key=key)
    # THEN a 503 for a counted request; nothing was generated and no lock is held
    assert_feed_unavailable(response, fault, metered=True)
    assert probe.calls == 0 and not items("LOCK#")
    # and once AWS has recovered, the next request generates at once
    fault.clear()
    assert cache_status(call_feed(PROBE, key=key)["headers"]) == STORED


@pytest.mark.parametrize("error", THROTTLED_OR_TIMED_OUT)
def test_a_lock_that_cannot_be_released_after_a_failed_rebuild_keeps_its_lease(
    error, fail, call_feed, make_key, probe
):
    # GIVEN a key with nothing generated yet, and a generator that fails
    key, _ = make_key()
    probe.fail = RuntimeError("the feed's data source is down")
    # WHEN releasing the rebuild lock fails as well
    fault = fail("dynamodb.DeleteItem", error, when=touching("LOCK#"))
    response = call_feed(PROBE, key=key)
    # THEN the client hears the generator's failure (a 502 problem, never a 500), and the
    # lock is left to its lease, which frees it
    assert fault.calls
    assert response["statusCode"] == HTTPStatus.BAD_GATEWAY
    assert problem_of(response)["status"] == HTTPStatus.BAD_GATEWAY
    [lock] = items("LOCK#")
    lease = float(lock["lease_until"]) - float(lock["started_at"])
    assert lease == pytest.approx(get_settings().lock_lease_seconds)


@pytest.mark.parametrize(
    "operation, prefix",
    [
        pytest.param("dynamodb.UpdateItem", "KEY#", id="pynamodb"),
        pytest.param("dynamodb.PutItem", "LOCK#", id="boto3"),
    ],
)
def test_a_timeout_surfaces_only_after_the_sdk_retried_it(
    operation, prefix, fail, call_feed, make_key, probe
):
    # GIVEN a key with nothing generated yet
    key, _ = make_key()
    # WHEN every attempt of one call times out
    fault = fail(operation, READ_TIMEOUT, when=touching(prefix))
    response = call_feed(PROBE, key=key)
    # THEN the SDK made its three attempts (standard mode) before the client was told to retry
    assert_retry_later(response, fault)
    assert fault.calls == 1 and fault.attempts == 3


def collided(shards: int) -> ServiceError:
    """Another invalidation of the scope held every shard: DynamoDB cancelled this one."""
    conflicts = ("TransactionConflict",) * shards
    return ServiceError(400, "TransactionCanceledException", reasons=conflicts)


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Colliding invalidations retry at once (they wait up to half a second otherwise)."""
    monkeypatch.setattr(invalidation, "BACKOFF_CAP_SECONDS", 0.0)


@pytest.mark.parametrize(
    "error", [*THROTTLED_OR_TIMED_OUT, pytest.param(TRANSACTION_THROTTLED, id="cancelled")]
)
def test_a_failing_invalidation_write_is_a_503_and_records_nothing(error, fail, invalidate):
    # WHEN the transaction that records an invalidation in every shard of its scope fails
    fault = fail("dynamodb.TransactWriteItems", error, when=touching("INVALIDATION#"))
    response = invalidate({"scope": "global"})
    # THEN the operator is told to retry, and nothing was invalidated
    assert_retry_later(response, fault)
    assert not items("INVALIDATION#")


def test_an_invalidation_that_collides_with_another_is_written_again(
    fail, invalidate, runtime, no_backoff
):
    # WHEN the first transaction collides with another invalidation of the scope
    shards = runtime.settings.invalidation_shards
    fault = fail("dynamodb.TransactWriteItems", collided(shards), times=1)
    response = invalidate({"feed": "catalog"})
    # THEN it is written again and accepted: every shard holds it
    assert fault.calls == 1
    assert response["statusCode"] == HTTPStatus.ACCEPTED
    assert len(items("INVALIDATION#feed#catalog")) == shards


def test_an_invalidation_that_keeps_colliding_is_a_503(fail, invalidate, runtime, no_backoff):
    # WHEN every attempt collides with another invalidation of the scope
    fault = fail("dynamodb.TransactWriteItems", collided(runtime.settings.invalidation_shards))
    response = invalidate({"feed": "catalog"})
    # THEN after a bounded number of attempts the operator is told to retry
    assert_retry_later(response, fault)
    assert fault.calls == invalidation.MAX_ATTEMPTS
    assert not items("INVALIDATION#")


# --- feeds: S3 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "container, error",
    [
        pytest.param("warm", HEAD_SLOW_DOWN, id="warm-slow-down"),
        pytest.param("cold", HEAD_INTERNAL_ERROR, id="cold-internal-error"),
        pytest.param("warm", CONNECT_TIMEOUT, id="warm-timed-out"),
        pytest.param("cold", READ_TIMEOUT, id="cold-timed-out"),
    ],
)
def test_a_failing_head_of_the_recorded_file_rebuilds_it_rather_than_redirect(
    container, error, fail, handler, containers, recorded, probe
):
    # GIVEN a recorded file, asked for from a container that served it (warm: it HEADs the
    # file alongside the DynamoDB reads) or from a new one (cold: once the entry names it)
    invoke = handler("FeedsFunction") if container == "warm" else containers("FeedsFunction").invoke
    # WHEN that HEAD fails
    fault = fail("s3.HeadObject", error)
    response = invoke(feed_event(PROBE, key=recorded.key))
    # THEN no redirect to a file nobody checked: it is generated again, answered and stored
    assert fault.calls
    assert response["statusCode"] == HTTPStatus.OK
    assert cache_status(response["headers"]) == STORED
    assert probe.calls == 2 and len(objects()) == 2


@pytest.mark.parametrize(
    "error", [pytest.param(SLOW_DOWN, id="slow-down"), pytest.param(READ_TIMEOUT, id="timed-out")]
)
def test_a_failed_upload_is_a_503_that_frees_the_lock_and_records_nothing(
    error, fail, call_feed, make_key, probe, deliver_s3_events
):
    # GIVEN a key with nothing generated yet
    key, _ = make_key()
    # WHEN the generated file cannot be uploaded
    fault = fail("s3.PutObject", error)
    response = call_feed(PROBE, key=key)
    # THEN a 503; no lock is held, and nothing is stored or recorded
    assert_feed_unavailable(response, fault, metered=True)
    assert not items("LOCK#") and not objects()
    assert deliver_s3_events() == 0 and not recorded_objects()
    # and once S3 has recovered, the next request generates at once and is recorded
    fault.clear()
    assert cache_status(call_feed(PROBE, key=key)["headers"]) == STORED
    assert probe.calls == 2
    assert deliver_s3_events() == 1 and len(recorded_objects()) == 1


def test_a_failed_upload_with_a_stale_file_redirects_to_the_stale_file(
    fail, call_feed, invalidate, recorded, probe
):
    # GIVEN a recorded file that a soft invalidation made stale
    invalidate({"feed": "probe", "soft": True})
    # WHEN the rebuild's upload fails
    fault = fail("s3.PutObject", SLOW_DOWN)
    response = call_feed(PROBE, key=recorded.key)
    # THEN the stale file answers (stale-if-error), and the lock is free again
    assert response["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT, response
    assert cache_status(response["headers"]) == STALE_ON_ERROR
    assert download(response["headers"]["Location"]) == recorded.body
    assert fault.calls == 1 and probe.calls == 2 and not items("LOCK#")


# --- collections: the snapshot and pointer transaction ---------------------------------------

TRANSACTION_FAULTS = [
    pytest.param(THROTTLING, id="throttled"),
    pytest.param(TRANSACTION_THROTTLED, id="cancelled-by-throttling"),
    pytest.param(READ_TIMEOUT, id="timed-out"),
]


def assert_every_pointer_has_its_snapshot(api: Api) -> None:
    """No half-written version: each pointer names a snapshot that is stored and served."""
    stored = items("COLLECTION#")
    keys = {(item["pk"], item["sk"]) for item in stored}
    for pointer in (item for item in stored if item["sk"] == "POINTER"):
        assert (pointer["pk"], f"SNAPSHOT#{pointer['version']}") in keys
        user = pointer["pk"].split("/")[1]
        assert api.index(user, pointer["version"])["statusCode"] == HTTPStatus.OK


def versions_of(user: str) -> int:
    partition = f"COLLECTION#users/{user}/matches"
    return sum(item["sk"].startswith("SNAPSHOT#") for item in items(partition))


@pytest.mark.parametrize("error", TRANSACTION_FAULTS)
def test_a_failing_first_version_write_is_a_503_and_leaves_no_half_version(error, fail, api):
    # GIVEN a user without a version yet
    # WHEN the transaction that writes the first snapshot and pointer fails
    fault = fail("dynamodb.TransactWriteItems", error)
    response = api.version("42")
    # THEN a 503 that says when to retry, and no pointer without its snapshot
    assert_retry_later(response, fault)
    assert_every_pointer_has_its_snapshot(api)
    # and once AWS has recovered, the version is created and its index served
    fault.clear()
    assert api.ids("42", api.current("42")) == []
    assert_every_pointer_has_its_snapshot(api)


@pytest.mark.parametrize("error", TRANSACTION_FAULTS)
def test_a_recording_whose_version_write_fails_is_a_503_and_a_repost_completes_it(error, fail, api):
    # GIVEN a finished match of two players
    body = match("m-1001", "42", "17")
    # WHEN the version transaction of one of them fails
    fault = fail("dynamodb.TransactWriteItems", error, times=1)
    response = api.record(body)
    # THEN a 503 that says when to retry, and no pointer without its snapshot
    assert_retry_later(response, fault)
    assert_every_pointer_has_its_snapshot(api)
    # WHEN the client sends it again
    assert api.record(body)["statusCode"] == HTTPStatus.OK
    # THEN each player has exactly one version, listing the match
    for user in ("42", "17"):
        assert api.ids(user, api.current(user)) == ["m-1001"]
        assert versions_of(user) == 1


# --- the upload recorder ------------------------------------------------------------------


def cache_id_of(object_key: str) -> str:
    """`files/<feed>/<client>/<cache-id>/<generation-id>.<ext>`, as the README names them."""
    return object_key.split("/")[3]


RECORDING_FAULTS = {
    # which call of one record fails: HEAD of its object, its entry's write, its lock's release
    "head": lambda key: ("s3.HeadObject", HEAD_SLOW_DOWN, lambda params: params["Key"] == key),
    "entry-write": lambda key: (
        "dynamodb.PutItem",
        THROUGHPUT_EXCEEDED,
        touching(f"ENTRY#{cache_id_of(key)}"),
    ),
    "lock-release": lambda key: (
        "dynamodb.DeleteItem",
        READ_TIMEOUT,
        touching(f"LOCK#{cache_id_of(key)}"),
    ),
}


def uploads_in_one_event(call_feed, make_key, count: int) -> tuple[list[str], dict]:
    """Files generated for `count` clients, and one S3 event carrying all their records."""
    for _ in range(count):
        call_feed(PROBE, key=make_key()[0])
    uploads = sorted(objects())
    event = s3_event("ObjectCreated:Put", uploads[0])
    event["Records"] = [s3_event("ObjectCreated:Put", key)["Records"][0] for key in uploads]
    return uploads, event


def assert_lambda_retries_then_dead_letters_recorder_events() -> None:
    """What makes a raising recorder safe: template.yaml's EventInvokeConfig for it."""
    recorder = STACK.resources("AWS::Serverless::Function")["RecorderFunction"]
    invoke_config = recorder["Properties"]["EventInvokeConfig"]
    assert invoke_config["MaximumRetryAttempts"] >= 1
    assert invoke_config["DestinationConfig"]["OnFailure"]["Type"] == "SQS"


@pytest.mark.parametrize("step", RECORDING_FAULTS)
def test_a_record_failing_mid_batch_fails_the_event_and_the_others_are_recorded(
    step, fail, handler, call_feed, make_key, probe
):
    # GIVEN three uploads whose records arrive in one S3 event
    uploads, event = uploads_in_one_event(call_feed, make_key, 3)
    failing = uploads[1]
    # WHEN recording the middle one fails
    operation, error, when = RECORDING_FAULTS[step](failing)
    fault = fail(operation, error, when=when)
    # THEN the event fails, for Lambda to retry it and, failing again, to dead-letter it
    with pytest.raises(Exception, match="1 of 3 records failed"):
        handler("RecorderFunction")(event)
    assert_lambda_retries_then_dead_letters_recorder_events()
    # and the others are recorded and their locks released; the failing one keeps its lock
    assert recorded_objects() - {failing} == set(uploads) - {failing}
    assert [lock["object_key"] for lock in items("LOCK#")] == [failing]
    # WHEN Lambda retries the event, AWS healthy again
    fault.clear()
    handler("RecorderFunction")(event)
    # THEN every upload is recorded, and no lock is left
    assert recorded_objects() == set(uploads) and not items("LOCK#")


# --- an S3 event that never arrives ---------------------------------------------------------


def let_leases_run_out() -> None:
    """Every lock's lease ended a second ago: the time a lease lasts, without waiting it out."""
    table = boto3.resource("dynamodb").Table(TABLE_NAME)
    for lock in items("LOCK#"):
        table.update_item(
            Key={"pk": lock["pk"], "sk": lock["sk"]},
            UpdateExpression="SET lease_until = :past",
            ExpressionAttributeValues={":past": Decimal(repr(time.time() - 1))},
        )


def test_a_lock_whose_upload_event_never_arrives_is_freed_by_its_lease(
    monkeypatch, call_feed, containers, make_key, probe
):
    # GIVEN a 20 s lease, and a generation uploaded whose S3 event never reaches the recorder
    monkeypatch.setenv(LOCK_LEASE_SECONDS, "20")
    reset_container_state()
    key, _ = make_key()
    assert cache_status(call_feed(PROBE, key=key)["headers"]) == STORED
    [lock] = items("LOCK#")
    assert float(lock["lease_until"]) - float(lock["started_at"]) == pytest.approx(20)
    # WHEN another request comes within the lease
    # THEN it is sent to the owner's upload, without generating again
    assert cache_status(call_feed(PROBE, key=key)["headers"]) == COLLAPSED
    assert probe.calls == 1
    # WHEN the lease has run out and five requests arrive at once
    let_leases_run_out()
    pool = containers("FeedsFunction")
    with ThreadPoolExecutor(max_workers=5) as executor:
        answers = list(executor.map(pool.invoke, [feed_event(PROBE, key=key)] * 5))
    # THEN exactly one of them generates again; the others wait for its upload
    assert probe.calls == 2
    statuses = sorted(cache_status(answer["headers"]) for answer in answers)
    assert statuses == sorted([STORED] + [COLLAPSED] * 4)
