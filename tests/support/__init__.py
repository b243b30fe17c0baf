"""Helpers shared by the test suites: the template's names and resources, fake AWS."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote_plus, unquote, urlsplit

import boto3
from aws_lambda_powertools.metrics.provider.cold_start import reset_cold_start_flag

from offload import usage
from offload.config import app_modules, get_settings
from offload.feeds.origin import origin_client
from offload.feeds.outcome import CACHE_STATUS_NAME
from offload.files import OBJECT_PREFIX, Generation
from offload.observability import metrics
from offload.plugins import Plugins, load_plugins
from offload.runtime import get_runtime
from offload_local.gateway import query_parameters
from offload_local.template import ROOT, Stack, load

EVENTS = ROOT / "events"
STACK = Stack(load())
TABLE_NAME = STACK.resource_name("Table")
BUCKET_NAME = STACK.resource_name("FeedsBucket")

TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": STACK.region,
    "AWS_REGION": STACK.region,
    "TABLE_NAME": TABLE_NAME,
    "BUCKET_NAME": BUCKET_NAME,
    "GENERATOR_FUNCTION_NAME": STACK.resource_name("FeedGeneratorFunction"),
    # The plugins the template names (the demo), as every function loads them.
    "OFFLOAD_APP": STACK.functions()[0].environment["OFFLOAD_APP"],
    "POWERTOOLS_SERVICE_NAME": "offload-tests",
    "POWERTOOLS_TRACE_DISABLED": "true",
    # Short waits keep lock tests quick; the behaviour is the same at production values.
    "LOCK_WAIT_SECONDS": "5",
    "LOCK_POLL_SECONDS": "0.02",
}


def plugins() -> Plugins:
    """The plugins the template names, loaded as a function's cold start loads them."""
    return load_plugins(app_modules(TEST_ENVIRONMENT["OFFLOAD_APP"]))


# What a page on another origin must be able to read of every answer, on every hop.
CORS_EXPOSED = frozenset(
    {
        "etag",
        "cache-status",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "retry-after",
        "location",
        "content-disposition",
        "content-length",
        "repr-digest",
    }
)

def cache_status(headers: Mapping[str, str]) -> str | None:
    """Offload's own `Cache-Status` entry (its parameters), wherever edges appended theirs."""
    value = next((v for k, v in headers.items() if k.lower() == "cache-status"), "")
    for entry in value.split(","):
        name, _, parameters = entry.strip().partition(";")
        if name == CACHE_STATUS_NAME:
            return parameters.strip()
    return None


def reset_container_state() -> None:
    """Forget what a warm container would remember between tests."""
    get_settings.cache_clear()
    get_runtime.cache_clear()
    origin_client.cache_clear()
    metrics.clear_metrics()
    reset_cold_start_flag()
    usage.PENDING.clear()


def feed_event(
    path: str = "/feeds/catalog.json",
    *,
    key: str | None = None,
    query: str = "",
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> dict:
    """A feed request event, made from events/feed_request_no_key.json."""
    event = json.loads((EVENTS / "feed_request_no_key.json").read_text())
    event["requestContext"]["http"]["method"] = method
    event["routeKey"] = f"{method} /feeds/{{file}}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["pathParameters"] = {"file": path.rsplit("/", 1)[-1]}
    event["rawQueryString"] = query
    if params := query_parameters(query):
        event["queryStringParameters"] = params
    if key is not None:
        event["headers"]["x-api-key"] = key
    event["headers"].update(headers or {})
    return event


def s3_event(name: str, key: str, bucket: str | None = None) -> dict:
    """An S3 event for `key`, made from events/s3_object_created.json or _removed.json."""
    template = "s3_object_created" if name.startswith("ObjectCreated") else "s3_object_removed"
    event = json.loads((EVENTS / f"{template}.json").read_text())
    record = event["Records"][0]
    record["eventName"] = name
    record["s3"]["object"]["key"] = quote_plus(key, safe="/")
    record["s3"]["bucket"]["name"] = bucket or BUCKET_NAME
    return event


def stored_generations(feed: str | None = None, owner: str | None = None) -> list[str]:
    """The generated files in the bucket, of one feed (and owner) if named, by key; their gzip
    copies left out."""
    prefix = "/".join([OBJECT_PREFIX, *(part for part in (feed, owner) if part), ""])
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET_NAME, Prefix=prefix)
    keys = (item["Key"] for item in listed.get("Contents", []))
    return sorted(key for key in keys if Generation.of_object(key) is not None)


def signed_generation(url: str) -> Generation:
    """The generation a signed URL fetches, plain or its gzip copy, virtual-hosted or
    path-style (the key is the path, after the bucket if it is there)."""
    key = unquote(urlsplit(url).path).lstrip("/").removeprefix(f"{BUCKET_NAME}/")
    generation = Generation.of_object(key) or Generation.of_gzip_copy(key)
    assert generation is not None, key
    return generation


def problem_of(response: dict) -> dict:
    """The problem document of an error answer, checking its media type."""
    assert response["headers"]["Content-Type"] == "application/problem+json"
    problem = json.loads(response["body"])
    assert problem["status"] == response["statusCode"]
    assert {"type", "title", "status", "detail"} <= problem.keys()
    return problem


@dataclass
class Api:
    """Builds requests from the events/ files and invokes the collections handler."""

    invoke: Callable[[dict], dict]
    load_event: Callable[[str], dict]
    admin_key: str

    def get(self, name: str, path: str, query: str = "", headers: dict | None = None) -> dict:
        event = self.load_event(name)
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["rawQueryString"] = query
        event.pop("queryStringParameters", None)
        if params := query_parameters(query):
            event["queryStringParameters"] = params
        event["pathParameters"] = path_parameters(path)
        event["headers"].update(headers or {})
        return self.invoke(event)

    def version(self, user: str, headers: dict | None = None, query: str = "") -> dict:
        return self.get("collection_version", f"/users/{user}/matches/version", query, headers)

    def index(self, user: str, version: str | None = None, headers: dict | None = None) -> dict:
        query = "" if version is None else f"version={version}"
        return self.get("collection_index", f"/users/{user}/matches/index", query, headers)

    def page(self, url: str, headers: dict | None = None) -> dict:
        """A full page of a list, by the URL a `next` link gave."""
        return self.get("collection_page", url, "", headers)

    def match(self, match_id: str, headers: dict | None = None) -> dict:
        return self.get("match_request", f"/matches/{match_id}", "", headers)

    def record(
        self,
        body: Any,
        key: str | None = "admin",
        headers: dict | None = None,
        path: str = "/matches",
    ) -> dict:
        """POST `body` to a collection's recording route (`/matches`, `/releases`)."""
        event = self.load_event("match_record")
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["pathParameters"] = path_parameters(path)
        event["headers"].pop("x-api-key", None)
        if key is not None:
            event["headers"]["x-api-key"] = self.admin_key if key == "admin" else key
        event["headers"].update(headers or {})
        event["body"] = body if isinstance(body, str) else json.dumps(body)
        return self.invoke(event)

    def current(self, user: str) -> str:
        response = self.version(user)
        assert response["statusCode"] == HTTPStatus.OK
        return json.loads(response["body"])["version"]

    def ids(self, user: str, version: str) -> list[str]:
        """Every id the version lists: its first page, then each `next` page in turn."""
        response = self.index(user, version)
        ids: list[str] = []
        while True:
            assert response["statusCode"] == HTTPStatus.OK, response["body"]
            document = json.loads(response["body"])
            ids.extend(document["match_ids"])
            if "next" not in document:
                return ids
            response = self.page(document["next"])


def path_parameters(path: str) -> dict[str, str]:
    """The collections routes' path parameters of `path`, as API Gateway fills them."""
    names = ("resource", "resource_id", "collection", None, "page")
    segments = path.split("?", 1)[0].strip("/").split("/")
    return {name: value for name, value in zip(names, segments, strict=False) if name}


def match(match_id: str, *players: str, finished_at: str = "2026-11-21T18:04:00Z", **extra) -> dict:
    return {"id": match_id, "players": list(players), "finished_at": finished_at, **extra}


def rsa_private_key() -> tuple[Any, str]:
    """A fresh RSA key (as CloudFront key groups take) and its PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return key, pem
