"""Unit fixtures: moto in-process, handlers as template.yaml declares them."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from unittest.mock import patch

import boto3
import botocore.session
import pytest
from moto import mock_aws

from offload import api_keys, auth
from offload.config import (
    CLOUDFRONT_DOMAIN_PARAMETER,
    CLOUDFRONT_KEY_ID,
    CLOUDFRONT_PRIVATE_KEY_PARAMETER,
    ORIGIN_BASE_URL,
)
from offload.feeds import origin as origin_module
from offload.feeds.background_build import BackgroundJob, LambdaLauncher
from offload.feeds.origin import OriginClient
from offload.runtime import Runtime, get_runtime
from offload_demo.catalog import product_records, seed_products
from offload_local.isolation import serialise_dynamodb
from offload_local.lambdas import Containers, LocalContext, load_handler
from offload_local.resources import create_resources
from offload_local.stack import seed_demo_keys
from offload_local.template import Function
from tests.support import (
    STACK,
    Api,
    feed_event,
    reset_container_state,
    rsa_private_key,
    s3_event,
    stored_generations,
)
from tests.support.feeds import CloudFront, Probe, probe_feed
from tests.support.origin import BASE_URL, CSV, Answer, FakeOrigin

FUNCTIONS = {function.logical_id: function for function in STACK.functions()}
_clients = itertools.count(1)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Unit tests never open a socket (moto runs in-process); the local stack's suites do."""
    item.add_marker(pytest.mark.disable_socket)


@pytest.fixture(scope="session", autouse=True)
def botocore_session() -> Iterator[None]:
    """One botocore session for PynamoDB's connections, as boto3's default session is kept.

    A session loads each service's model files once; PynamoDB makes a new one per
    connection, and every test binds new connections. Credentials and region come from the
    environment, which is the same fake one for every test.
    """
    session = botocore.session.get_session()
    with patch("pynamodb.connection.base.get_session", return_value=session):
        yield


@pytest.fixture
def aws() -> Iterator[None]:
    """An empty AWS account in-process, with the template's table and bucket."""
    serialise_dynamodb()
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        create_resources(STACK)
        get_runtime()  # binds the models to the table, as a container's cold start does
        yield


@pytest.fixture
def runtime(aws: None) -> Runtime:
    return get_runtime()


@pytest.fixture
def lambda_context() -> LocalContext:
    return LocalContext("test")


@pytest.fixture
def function() -> Callable[[str], Function]:
    return FUNCTIONS.__getitem__


@pytest.fixture
def handler(aws: None, lambda_context: LocalContext) -> Callable[[str], Callable[[dict], Any]]:
    """`handler("FeedsFunction")(event)` invokes a freshly loaded (cold) handler module."""
    loaded: dict[str, Any] = {}

    def get(logical_id: str) -> Callable[[dict], Any]:
        if logical_id not in loaded:
            loaded[logical_id] = load_handler(FUNCTIONS[logical_id])
        return lambda event: loaded[logical_id](event, lambda_context)

    return get


@pytest.fixture
def containers(aws: None) -> Callable[[str], Containers]:
    """A pool of simulated containers per function, for concurrent invocations."""
    pools: dict[str, Containers] = {}

    def get(logical_id: str) -> Containers:
        return pools.setdefault(logical_id, Containers(FUNCTIONS[logical_id]))

    return get


@pytest.fixture
def catalog(aws: None) -> int:
    """A realistic product catalog in the table."""
    return seed_products(product_records(2000))


@pytest.fixture
def demo_keys(aws: None) -> None:
    """The local stack's demo keys, which the events/ files carry."""
    seed_demo_keys()


@pytest.fixture
def make_key(aws: None) -> Callable[..., tuple[str, str]]:
    """Create an API key for a fresh client id; returns (key, client_id)."""

    def make_key(
        *, scopes: set[str] | None = None, hourly_limit: int = 1000, client_id: str | None = None
    ) -> tuple[str, str]:
        client_id = client_id or f"client-{next(_clients)}"
        key = api_keys.create_key(
            client_id, scopes=scopes or {auth.SCOPE_FEEDS}, hourly_limit=hourly_limit
        )
        return key, client_id

    return make_key


@pytest.fixture
def probe() -> Iterator[Probe]:
    """A `probe` feed (JSON only, 1 h max age, 5 s generation timeout) backed by a Probe."""
    with probe_feed("probe") as spy:
        yield spy


@pytest.fixture
def call_feed(handler: Callable[[str], Callable[[dict], Any]]) -> Callable[..., dict]:
    """Invoke the feeds handler: `call_feed("/feeds/catalog.json", key=k, query="...")`."""

    def call(path: str = "/feeds/catalog.json", **kwargs: Any) -> dict:
        return handler("FeedsFunction")(feed_event(path, **kwargs))

    return call


@pytest.fixture
def deliver_s3_events(handler: Callable[[str], Callable[[dict], Any]]) -> Callable[[], int]:
    """Send the recorder an ObjectCreated event for each upload it has not seen yet."""
    seen: set[str] = set()

    def deliver() -> int:
        # Generated files only: their gzip copies are recorded with them (a copy's event
        # is a no-op, tested in test_recorder).
        new = [key for key in stored_generations() if key not in seen]
        for key in new:
            handler("RecorderFunction")(s3_event("ObjectCreated:Put", key))
            seen.add(key)
        return len(new)

    return deliver


@pytest.fixture
def invalidate(
    handler: Callable[[str], Callable[[dict], Any]],
    make_key: Callable[..., tuple[str, str]],
    load_event: Callable[[str], dict],
) -> Callable[[dict], dict]:
    """POST a body to /invalidations with an admin key."""
    admin_key, _ = make_key(scopes={auth.SCOPE_ADMIN})

    def post(body: dict) -> dict:
        event = load_event("invalidation")
        event["headers"]["x-api-key"] = admin_key
        event["body"] = json.dumps(body)
        return handler("InvalidationsFunction")(event)

    return post


@pytest.fixture
def api(handler, load_event, make_key) -> Api:
    """The collections handler, with an admin key for recording matches."""
    admin_key, _ = make_key(scopes={auth.SCOPE_ADMIN})
    return Api(handler("CollectionsFunction"), load_event, admin_key)


@pytest.fixture
def cloudfront(aws: None, monkeypatch: pytest.MonkeyPatch) -> CloudFront:
    """Containers started from here on sign CloudFront URLs, reading SSM as in AWS."""
    private_key, pem = rsa_private_key()
    # Unique names keep the tests apart.
    prefix = f"/offload-test-{uuid.uuid4().hex[:8]}"
    signing = CloudFront(
        key_id="K2JCJMDEHXQW5F",
        domain="d111111abcdef8.cloudfront.net",
        private_key=private_key,
        key_parameter=f"{prefix}/cloudfront-key",
        domain_parameter=f"{prefix}/cdn-domain",
    )
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=signing.key_parameter, Value=pem, Type="SecureString")
    ssm.put_parameter(Name=signing.domain_parameter, Value=signing.domain, Type="String")
    monkeypatch.setenv(CLOUDFRONT_KEY_ID, signing.key_id)
    monkeypatch.setenv(CLOUDFRONT_PRIVATE_KEY_PARAMETER, signing.key_parameter)
    monkeypatch.setenv(CLOUDFRONT_DOMAIN_PARAMETER, signing.domain_parameter)
    reset_container_state()
    get_runtime()
    return signing


@pytest.fixture
def origin(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOrigin]:
    """The fake origin behind ORIGIN_BASE_URL, for containers started from here on."""
    fake = FakeOrigin(answers=[Answer(body=CSV, headers={"ETag": '"v1"'})])
    monkeypatch.setenv(ORIGIN_BASE_URL, BASE_URL)
    reset_container_state()
    get_runtime()
    clients: list[OriginClient] = []

    def container_client() -> OriginClient:
        if not clients:  # one per container, as origin_client's cache keeps it
            clients.append(OriginClient(get_runtime().settings, pools=fake))
        return clients[0]

    monkeypatch.setattr(origin_module, "origin_client", container_client)
    yield fake
    if fake.gate is not None:
        fake.gate.set()


@pytest.fixture
def slow() -> Iterator[Probe]:
    """A feed `slow` whose generation may take a minute: it runs in the background."""
    with probe_feed("slow", generation_timeout_seconds=60.0) as spy:
        yield spy


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[BackgroundJob]:
    """The jobs the feeds function hands to the generator function, in order."""
    jobs: list[BackgroundJob] = []
    monkeypatch.setattr(LambdaLauncher, "__call__", lambda self, job: jobs.append(job))
    return jobs


@pytest.fixture
def run_job(handler: Callable[[str], Callable[[dict], Any]]) -> Callable[[BackgroundJob], str]:
    """Invoke the generator function's handler with a job's event, as Lambda would."""

    def run(job: BackgroundJob) -> str:
        return handler("FeedGeneratorFunction")(job.event())["finished"]

    return run
