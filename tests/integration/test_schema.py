"""The API answers as openapi.yaml says, checked with schemathesis against the local stack.

Generated requests: each operation gets a bounded, derandomized set (the document's examples,
its coverage cases, then generated valid and invalid inputs, without shrinking), each with a
valid key where the operation needs one. Written requests: the answers that need state
(304s, a snapshot, a feed redirect, a spent limit) or a bad key, which generation cannot reach.
Every answer goes through the same checks; no request leaves the stack on loopback.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from offload import auth
from offload.collections.store import PAGE_SIZE, CollectionStore, Entry
from offload.config import get_settings
from offload_demo.matches import MATCHES
from tests.support import ROOT
from tests.support.stack import RunningStack, create_stack_key

PROBLEM_JSON = "application/problem+json"
FEED = "GET /feeds/{file}"
VERSION = "GET /{resource}/{resource_id}/{collection}/version"
INDEX = "GET /{resource}/{resource_id}/{collection}/index"
PAGE = "GET /{resource}/{resource_id}/{collection}/pages/{page}"
ENTITY = "GET /{resource}/{resource_id}"
RECORD = "POST /{resource}"
MATCHES_ROUTE = {"resource": "matches"}
RELEASES_ROUTE = {"resource": "releases"}
INVALIDATE = "POST /invalidations"
SETTINGS = {
    "generation": {
        "mode": "all",
        "max-examples": 12,
        "no-shrink": True,
        "deterministic": True,
        "database": "none",
        # Keys come from the test (valid ones), not from generated X-Api-Key values.
        "with-security-parameters": False,
    },
    "phases": {
        # Other methods on these paths are API Gateway's answers (404), not the document's.
        "coverage": {"unexpected-methods": []},
    },
    "operations": [
        {
            # A valid feed request is a generation of the demo catalog (about a second each):
            # its coverage cases keep to invalid inputs, and few valid ones are generated.
            "include-name": FEED,
            "phases": {"coverage": {"generation": {"mode": "negative"}}},
            "generation": {"max-examples": 6},
        },
    ],
    "request-timeout": 30,
}


def is_problem(ctx: CheckContext, response: Response, case: Case) -> None:
    """Every error answer is an RFC 9457 problem whose status is the answer's (a HEAD's
    answer has no body to hold one)."""
    if response.status_code < 400 or case.method.upper() == "HEAD":
        return
    media_type = response.headers.get("content-type", [""])[0].split(";")[0].strip()
    assert media_type == PROBLEM_JSON, f"{response.status_code} answered as {media_type!r}"
    problem = json.loads(response.content)
    assert {"type", "title", "status", "detail"} <= problem.keys(), problem
    assert problem["status"] == response.status_code, problem


def stays_on_loopback(ctx: CheckContext, response: Response, case: Case) -> None:
    """No request of the run went anywhere but the local stack."""
    host = urlsplit(response.request.url).hostname or ""
    assert ipaddress.ip_address(host).is_loopback, response.request.url


CHECKS = [
    stays_on_loopback,
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    is_problem,
]

schema = schemathesis.openapi.from_path(
    ROOT / "openapi.yaml", config=SchemathesisConfig.from_dict(SETTINGS)
)


@pytest.fixture(scope="module")
def keys(local_stack: RunningStack) -> dict[str, str]:
    """A fresh key per scope for the module; the feeds one with room for the run in its window."""
    feeds, _ = create_stack_key(local_stack, hourly_limit=100_000)
    admin, _ = create_stack_key(local_stack, scope=auth.SCOPE_ADMIN)
    return {auth.SCOPE_FEEDS: feeds, auth.SCOPE_ADMIN: admin}


@pytest.fixture(scope="module")
def credentials(keys: dict[str, str]) -> Callable[[Case], dict[str, Any]]:
    """Request arguments with the key an operation needs, sent in each documented way in turn."""
    ways = itertools.cycle(("ApiKeyHeader", "BearerKey", "ApiKeyQuery"))

    def credentials(case: Case) -> dict[str, Any]:
        requirements = case.operation.definition.raw.get("security", [])
        if not requirements:
            return {}
        way = next(ways)
        (scope,) = next(requirement[way] for requirement in requirements if way in requirement)
        if way == "ApiKeyHeader":
            return {"headers": {"X-Api-Key": keys[scope]}}
        if way == "BearerKey":
            return {"headers": {"Authorization": f"Bearer {keys[scope]}"}}
        return {"params": {"key": keys[scope]}}

    return credentials


@schema.parametrize()
# One HTTP session for all of an operation's examples, on purpose.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_generated_requests_are_answered_as_documented(
    case: Case,
    local_stack: RunningStack,
    credentials: Callable[[Case], dict[str, Any]],
    http: requests.Session,
) -> None:
    case.call_and_validate(
        base_url=local_stack.base_url,
        session=http,
        checks=CHECKS,
        allow_redirects=False,
        **credentials(case),
    )


@dataclass
class Api:
    """Written requests through the document's operations, checked as the generated ones."""

    stack: RunningStack
    http: requests.Session

    def call(
        self, label: str, status: HTTPStatus, *, key: str | None = None, **case: Any
    ) -> Response:
        method, path = label.split(" ", 1)
        response = (
            schema[path][method]
            .Case(**case)
            .call_and_validate(
                base_url=self.stack.base_url,
                session=self.http,
                checks=CHECKS,
                allow_redirects=False,
                headers={"X-Api-Key": key} if key else {},
            )
        )
        assert response.status_code == status, response.text
        return response


@pytest.fixture
def api(local_stack: RunningStack, http: requests.Session) -> Api:
    return Api(local_stack, http)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def matches_of(user: str) -> dict[str, str]:
    return {"resource": "users", "resource_id": user, "collection": "matches"}


def releases_of(repo: str) -> dict[str, str]:
    return {"resource": "repos", "resource_id": repo, "collection": "releases"}


def revalidated(api: Api, label: str, answer: Response, **case: Any) -> None:
    """The answer's ETag in If-None-Match gives a 304 with the same ETag."""
    etag = answer.headers["etag"][0]
    again = api.call(label, HTTPStatus.NOT_MODIFIED, headers={"If-None-Match": etag}, **case)
    assert again.headers["etag"] == [etag]


def test_collection_answers_that_need_state_are_as_documented(api: Api, keys: dict[str, str]):
    # GIVEN a finished match between two new users, and one still in play
    admin = keys[auth.SCOPE_ADMIN]
    user, other = new_id("u"), new_id("u")
    finished = {
        "id": new_id("m"),
        "players": [user, other],
        "finished_at": "2026-11-22T20:30:00Z",
        "map": "harbour",
    }
    live = {"id": new_id("m"), "players": [user], "finished_at": None}

    # WHEN they are recorded (again, and differently)
    route = {"path_parameters": MATCHES_ROUTE}
    api.call(RECORD, HTTPStatus.CREATED, key=admin, body=finished, **route)
    api.call(RECORD, HTTPStatus.OK, key=admin, body=finished, **route)
    api.call(RECORD, HTTPStatus.CONFLICT, key=admin, body={**finished, "map": "orbit"}, **route)
    api.call(RECORD, HTTPStatus.CREATED, key=admin, body=live, **route)
    too_large = {**live, "id": new_id("m"), "notes": "x" * 70_000}
    api.call(RECORD, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, key=admin, body=too_large, **route)

    # THEN the pointer, redirect, snapshot and matches read and revalidate as documented
    owner = {"path_parameters": matches_of(user)}
    pointer = api.call(VERSION, HTTPStatus.OK, **owner)
    revalidated(api, VERSION, pointer, **owner)
    revalidated(api, INDEX, api.call(INDEX, HTTPStatus.TEMPORARY_REDIRECT, **owner), **owner)
    versioned = {**owner, "query": {"version": pointer.json()["version"]}}
    snapshot = api.call(INDEX, HTTPStatus.OK, **versioned)
    assert snapshot.json() == {"match_ids": [finished["id"]]}
    revalidated(api, INDEX, snapshot, **versioned)
    for match in (finished, live):
        entity = {"path_parameters": {**MATCHES_ROUTE, "resource_id": match["id"]}}
        revalidated(api, ENTITY, api.call(ENTITY, HTTPStatus.OK, **entity), **entity)
    body = {"collection": f"users/{user}/matches"}
    moved = api.call(INVALIDATE, HTTPStatus.ACCEPTED, key=admin, body=body)
    assert int(moved.json()["version"]) > int(pointer.json()["version"])


def test_release_answers_that_need_state_are_as_documented(api: Api, keys: dict[str, str]):
    # GIVEN a published release of a new repository, and a draft
    admin = keys[auth.SCOPE_ADMIN]
    repo = new_id("repo")
    published = {"id": new_id("r"), "repo": repo, "published_at": "2026-11-21T18:04:00Z"}
    draft = {"id": new_id("r"), "repo": repo, "published_at": None, "name": "v2.0"}
    route = {"path_parameters": RELEASES_ROUTE}

    # WHEN they are recorded (again, and differently)
    api.call(RECORD, HTTPStatus.CREATED, key=admin, body={**published, "name": "v1.0"}, **route)
    api.call(RECORD, HTTPStatus.OK, key=admin, body={**published, "name": "v1.0"}, **route)
    api.call(RECORD, HTTPStatus.CONFLICT, key=admin, body={**published, "name": "x"}, **route)
    api.call(RECORD, HTTPStatus.CREATED, key=admin, body=draft, **route)
    api.call(RECORD, HTTPStatus.OK, key=admin, body={**draft, "name": "v2.1"}, **route)

    # THEN the repository's pointer, redirect, snapshot and releases answer as documented
    owner = {"path_parameters": releases_of(repo)}
    pointer = api.call(VERSION, HTTPStatus.OK, **owner)
    revalidated(api, VERSION, pointer, **owner)
    revalidated(api, INDEX, api.call(INDEX, HTTPStatus.TEMPORARY_REDIRECT, **owner), **owner)
    versioned = {**owner, "query": {"version": pointer.json()["version"]}}
    snapshot = api.call(INDEX, HTTPStatus.OK, **versioned)
    assert snapshot.json() == {"release_ids": [published["id"]]}
    revalidated(api, INDEX, snapshot, **versioned)
    for release in (published, draft):
        entity = {"path_parameters": {**RELEASES_ROUTE, "resource_id": release["id"]}}
        revalidated(api, ENTITY, api.call(ENTITY, HTTPStatus.OK, **entity), **entity)
    body = {"collection": f"repos/{repo}/releases"}
    moved = api.call(INVALIDATE, HTTPStatus.ACCEPTED, key=admin, body=body)
    assert int(moved.json()["version"]) > int(pointer.json()["version"])

    # AND a collection the deployment does not serve is the documented 404
    mismatched = {"path_parameters": {**releases_of(repo), "resource": "users"}}
    api.call(VERSION, HTTPStatus.NOT_FOUND, **mismatched)


def test_a_list_longer_than_a_page_answers_as_documented(
    api: Api, keys: dict[str, str], stack_aws: RunningStack
):
    # GIVEN a user with one match more than a page holds (seeded as members), and a version
    user = new_id("u")
    CollectionStore.for_settings(get_settings()).add(
        (MATCHES.of(user), Entry(f"m-{number:05d}", f"2029-01-01T00:00:00.{number:06d}Z"))
        for number in range(PAGE_SIZE + 1)
    )
    body = {"collection": f"users/{user}/matches"}
    api.call(INVALIDATE, HTTPStatus.ACCEPTED, key=keys[auth.SCOPE_ADMIN], body=body)
    owner = {"path_parameters": matches_of(user)}
    version = api.call(VERSION, HTTPStatus.OK, **owner).json()["version"]

    # THEN its first page holds the newest match and links to the page of the others
    first = api.call(INDEX, HTTPStatus.OK, **owner, query={"version": version}).json()
    assert first["match_ids"] == [f"m-{PAGE_SIZE:05d}"]
    page = {"path_parameters": {**matches_of(user), "page": first["next"].rsplit("/", 1)[1]}}
    older = api.call(PAGE, HTTPStatus.OK, **page)
    assert len(older.json()["match_ids"]) == PAGE_SIZE and "next" not in older.json()
    revalidated(api, PAGE, older, **page)


def test_feed_answers_that_need_state_are_as_documented(
    api: Api, keys: dict[str, str], make_key: Callable[..., tuple[str, str]]
):
    # GIVEN a new client
    key, client_id = make_key()
    garden = {"path_parameters": {"file": "catalog.xml"}, "query": {"category": "garden"}}

    # WHEN it asks for a file twice: generated inline, then redirected to
    api.call(FEED, HTTPStatus.OK, key=key, **garden)
    api.call(FEED, HTTPStatus.TEMPORARY_REDIRECT, key=key, **garden)

    # THEN its files can be invalidated, and a spent limit answers as documented
    body = {"client": client_id, "soft": True}
    api.call(INVALIDATE, HTTPStatus.ACCEPTED, key=keys[auth.SCOPE_ADMIN], body=body)
    limited, _ = make_key(hourly_limit=1)
    junk = {"path_parameters": {"file": "catalog.json"}, "query": {"junk": "1"}}
    api.call(FEED, HTTPStatus.BAD_REQUEST, key=limited, **junk)  # counted all the same
    api.call(FEED, HTTPStatus.TOO_MANY_REQUESTS, key=limited, **junk)


SECURED = {
    FEED: {"path_parameters": {"file": "catalog.json"}},
    RECORD: {
        "path_parameters": RELEASES_ROUTE,
        "body": {"id": "r-1", "repo": "offload", "published_at": None},
    },
    INVALIDATE: {"body": {"client": "acme"}},
}


@pytest.mark.parametrize("label", SECURED)
def test_missing_unknown_and_out_of_scope_keys_are_as_documented(
    api: Api, keys: dict[str, str], label: str
):
    # Deliberately without a valid key: these answers are what the document says of them.
    case = SECURED[label]
    api.call(label, HTTPStatus.UNAUTHORIZED, **case)
    api.call(label, HTTPStatus.FORBIDDEN, key="ofl_" + uuid.uuid4().hex, **case)
    other_scope = auth.SCOPE_ADMIN if label == FEED else auth.SCOPE_FEEDS
    api.call(label, HTTPStatus.FORBIDDEN, key=keys[other_scope], **case)
