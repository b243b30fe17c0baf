"""A hand-written corpus of bad input, sent byte for byte to the local stack over real HTTP.

Requests go out on a raw socket, so what is on the wire is exactly what a case says (no client
normalises `..`, re-encodes `%2F` or refuses a control character). Each case names who must
refuse it: the function, with an RFC 9457 problem whose `status` is the HTTP status and
`Cache-Control: no-store`, or API Gateway itself (`{"message": ...}`, as the local front
reproduces it) where no route matches or the body is over its limit. Every expected answer is
a 4xx, so none may be a 5xx, a redirect or data; without a valid key an authenticated route
answers 401 or 403. Junk in headers that public reads do not use leaves their answer as it was.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

import pytest

from offload_local.gateway import MAX_REQUEST_BYTES
from tests.support.stack import RunningStack, create_stack_key

Headers = tuple[tuple[str, str], ...]

FRESH_KEY = "<fresh-feeds-key>"  # replaced by the key of a client made for this module
FEEDS_KEY, ADMIN_KEY = "demo-feeds-key", "demo-admin-key"
KEYED: Headers = (("X-Api-Key", FRESH_KEY),)
ADMIN: Headers = (("X-Api-Key", ADMIN_KEY),)
JSON = "application/json"
TEN_KB = 10_000
ONE_MB = 1_100_000
DEEP = "[" * 100_000 + "]" * 100_000
MANY_TAGS = ", ".join(f'"{number}"' for number in range(500))

BAD_REQUEST = HTTPStatus.BAD_REQUEST
NOT_FOUND = HTTPStatus.NOT_FOUND


@dataclass(frozen=True)
class Case:
    """One request as it goes on the wire, and the refusal it must get."""

    name: str
    method: str
    target: str
    status: HTTPStatus
    headers: Headers = ()
    body: bytes = b""
    by_gateway: bool = False


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes


def exchange(
    base_url: str, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes
) -> Reply:
    """Send one request exactly as given (target and headers as UTF-8) and read the answer."""
    address = urlsplit(base_url)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {address.netloc}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body or method in {"POST", "PUT", "PATCH"}:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(head + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        answer = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, answer, response.read())


def with_key(headers: Headers, fresh_key: str) -> list[tuple[str, str]]:
    return [(name, value.replace(FRESH_KEY, fresh_key)) for name, value in headers]


def send(stack: RunningStack, case: Case, fresh_key: str) -> Reply:
    headers = with_key(case.headers, fresh_key)
    return exchange(stack.base_url, case.method, case.target, headers, case.body)


def assert_refused(reply: Reply, case: Case) -> None:
    """The expected 4xx, from the function as a problem or from the gateway as its own."""
    assert reply.status == case.status, f"{case.name}: {reply.status} {reply.body[:300]!r}"
    assert "location" not in reply.headers
    document = json.loads(reply.body)
    if case.by_gateway:
        assert reply.headers["content-type"] == JSON
        assert document == {"message": HTTPStatus(case.status).phrase}
        return
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.headers["cache-control"] == "no-store"
    assert document["status"] == reply.status
    assert {"type", "title", "detail"} <= set(document)


def params(cases: Iterable[Case]) -> list:
    return [pytest.param(case, id=case.name) for case in cases]


@pytest.fixture(scope="module")
def fresh_key(local_stack: RunningStack) -> str:
    """A feeds key of its own: refused feed requests are metered, on nobody else's limit."""
    return create_stack_key(local_stack)[0]


# Path parameters: (name, path with `{}` for the parameter, a valid value, headers).
PATH_PARAMETERS = (
    ("feed", "/feeds/{}.json", "catalog", KEYED),
    ("format", "/feeds/catalog.{}", "json", KEYED),
    ("version-user", "/users/{}/matches/version", "42", ()),
    ("index-user", "/users/{}/matches/index", "42", ()),
    ("page-user", "/users/{}/matches/pages/" + "0" * 64, "42", ()),
    ("match", "/matches/{}", "m-1001", ()),
    ("version-repo", "/repos/{}/releases/version", "offload", ()),
    ("release", "/releases/{}", "r-offload-1-0", ()),
)
# Junk that stays inside one path segment once decoded; `{v}` is the valid value. A bad path
# is a 400 (the README's feeds table; an id that fails its pattern is the same for collections).
IN_SEGMENT = (
    ("dot-dot", ".."),
    ("dot", "."),
    ("encoded-dot-dot", "%2e%2e"),
    ("double-encoded-traversal", "%252e%252e%252f{v}"),
    ("backslash-traversal", "..%5c{v}"),
    ("nul", "{v}%00"),
    ("newline", "{v}%0a"),
    ("carriage-return", "{v}%0d"),
    ("tab", "{v}%09"),
    ("delete", "{v}%7f"),
    ("space", "{v}%20"),
    ("encoded-question-mark", "{v}%3Fx=1"),
    ("encoded-hash", "{v}%23x"),
    ("malformed-percent", "{v}%zz"),
    ("invalid-utf8", "{v}%ff"),
    ("latin-letter", "{v}%C3%A9"),
    ("raw-utf8", "{v}é"),
    ("emoji", "{v}%F0%9F%98%80"),
    ("right-to-left-override", "%E2%80%AE{v}"),
    ("zero-width-space", "{v}%E2%80%8B"),
    ("arabic-indic-digits", "%D9%A4%D9%A2"),
    ("oversized", "a" * TEN_KB),
)
# Junk that decodes to a `/`, so the path no longer fits the route: API Gateway's 404.
ACROSS_SEGMENTS = (
    ("encoded-slash", "{v}%2F"),
    ("encoded-traversal", "%2e%2e%2f{v}"),
    ("upper-case-encoded-traversal", "..%2F..%2F{v}"),
)
# No leading `//` here: the local front's http.server folds it to `/` before routing.
PLAIN_TRAVERSAL = (
    ("GET", "/feeds/../matches/m-1001"),
    ("GET", "/feeds/./catalog.json"),
    ("GET", "/users/42/../17/matches/version"),
    ("GET", "/users/42/matches/index/../version"),
    ("GET", "/matches/../matches/m-1001"),
    ("GET", "/matches/m-1001/"),
    ("POST", "/invalidations/.."),
    ("POST", "/matches/../invalidations"),
    ("POST", "/invalidations/" + "a" * TEN_KB),
)


def segment_cases(
    junk: Sequence[tuple[str, str]], status: HTTPStatus, by_gateway: bool
) -> Iterator[Case]:
    for parameter, path, valid, headers in PATH_PARAMETERS:
        for name, value in junk:
            target = path.format(value.format(v=valid))
            yield Case(f"{parameter}-{name}", "GET", target, status, headers, b"", by_gateway)


@pytest.mark.parametrize("case", params(segment_cases(IN_SEGMENT, BAD_REQUEST, False)))
def test_malformed_path_parameter_is_400_problem(local_stack, fresh_key, case):
    assert_refused(send(local_stack, case, fresh_key), case)


TRAVERSAL = [
    *segment_cases(ACROSS_SEGMENTS, NOT_FOUND, True),
    *(Case(f"{m} {t[:40]}", m, t, NOT_FOUND, by_gateway=True) for m, t in PLAIN_TRAVERSAL),
    # One segment once decoded, so `POST /{resource}` takes them: no such collection, a
    # problem from the collections function (before any key is read).
    *(
        Case(f"POST {t}", "POST", t, NOT_FOUND, ADMIN, b"{}")
        for t in ("/invalidations%00", "/matches%0a", "/releases%09")
    ),
]


@pytest.mark.parametrize("case", params(TRAVERSAL))
def test_traversal_out_of_a_route_is_gateway_404(local_stack, fresh_key, case):
    assert_refused(send(local_stack, case, fresh_key), case)


ROUTES = (
    ("GET", "/feeds/catalog.json"),
    ("GET", "/users/42/matches/version"),
    ("GET", "/users/42/matches/index"),
    ("GET", "/users/42/matches/pages/" + "0" * 64),
    ("GET", "/matches/m-1001"),
    ("POST", "/matches"),
    ("GET", "/repos/offload/releases/index"),
    ("GET", "/releases/r-offload-1-0"),
    ("POST", "/releases"),
    ("POST", "/invalidations"),
)
WRONG_METHODS = [
    Case(f"{method} {path}", method, path, NOT_FOUND, ADMIN, b"{}", by_gateway=True)
    for route_method, path in ROUTES
    for method in ("PUT", "DELETE", "PATCH", "GET" if route_method == "POST" else "POST")
]


@pytest.mark.parametrize("case", params(WRONG_METHODS))
def test_method_without_a_route_is_gateway_404(local_stack, fresh_key, case):
    assert_refused(send(local_stack, case, fresh_key), case)


def query_cases(
    path: str, headers: Headers, queries: Iterable[tuple[str, str, HTTPStatus]]
) -> Iterator[Case]:
    for name, query, status in queries:
        yield Case(f"{path.rsplit('/', 1)[-1]}-{name}", "GET", f"{path}?{query}", status, headers)


OVERSIZED_QUERY = "&".join(f"p{number}=1" for number in range(1_500))
QUERY_JUNK = (
    ("unknown-parameter", "x=1", BAD_REQUEST),
    ("oversized-value", "x=" + "a" * TEN_KB, BAD_REQUEST),
    ("oversized-query", OVERSIZED_QUERY, BAD_REQUEST),
    ("empty-name", "=1", BAD_REQUEST),
)
# Public reads take no key, so `?key=` is one more undeclared parameter there.
PUBLIC_QUERY_JUNK = (*QUERY_JUNK, ("oversized-key-parameter", "key=" + "k" * TEN_KB, BAD_REQUEST))
QUERIES = [
    *query_cases(
        "/feeds/catalog.json",
        KEYED,
        (
            *QUERY_JUNK,
            ("repeated-parameter", "category=shoes&category=shoes", BAD_REQUEST),
            ("conflicting-parameter", "category=shoes&category=toys", BAD_REQUEST),
            ("oversized-declared-value", "category=" + "a" * TEN_KB, BAD_REQUEST),
            ("nul-in-value", "category=shoes%00", BAD_REQUEST),
            ("unicode-value", "category=sh%C3%B6es", BAD_REQUEST),
            ("bracketed-name", "category[]=shoes", BAD_REQUEST),
            ("name-without-value", "category", BAD_REQUEST),
        ),
    ),
    *query_cases(
        "/users/42/matches/version",
        (),
        (*PUBLIC_QUERY_JUNK, ("version-parameter", "version=1", BAD_REQUEST)),
    ),
    *query_cases(
        "/users/42/matches/index",
        (),
        (
            *PUBLIC_QUERY_JUNK,
            # A version is opaque: one that is malformed is one never issued.
            ("repeated-version", "version=1&version=2", NOT_FOUND),
            ("empty-version", "version=", NOT_FOUND),
            ("oversized-version", "version=" + "9" * TEN_KB, NOT_FOUND),
            ("nul-version", "version=%00", NOT_FOUND),
            ("negative-version", "version=-1", NOT_FOUND),
            ("exponent-version", "version=1e3", NOT_FOUND),
            ("emoji-version", "version=%F0%9F%98%80", NOT_FOUND),
            ("version-and-junk", "version=1&x=1", BAD_REQUEST),
            ("upper-case-name", "VERSION=1", BAD_REQUEST),
        ),
    ),
    *query_cases("/users/42/matches/pages/" + "0" * 64, (), PUBLIC_QUERY_JUNK),
    *query_cases("/matches/m-1001", (), PUBLIC_QUERY_JUNK),
]


@pytest.mark.parametrize("case", params(QUERIES))
def test_junk_query_is_refused_with_a_problem(local_stack, fresh_key, case):
    assert_refused(send(local_stack, case, fresh_key), case)


PROBE_MATCH = (
    b'{"id": "bad-input-probe", "players": ["bad-input-probe"], '
    b'"finished_at": "2026-11-21T18:04:00Z"}'
)
PROBE_INVALIDATION = b'{"client": "bad-input-probe"}'
# Each authenticated route with a body it would accept and its own and the other demo key.
AUTHENTICATED = (
    ("feeds", "GET", "/feeds/catalog.json", b"", FEEDS_KEY, ADMIN_KEY),
    ("matches", "POST", "/matches", PROBE_MATCH, ADMIN_KEY, FEEDS_KEY),
    ("invalidations", "POST", "/invalidations", PROBE_INVALIDATION, ADMIN_KEY, FEEDS_KEY),
)
UNAUTHORIZED, FORBIDDEN = HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN
# (name, query, headers, status); `{key}` is the route's key, `{other}` the other scope's.
CREDENTIALS = (
    ("no-key", "", (), UNAUTHORIZED),
    ("empty-api-key", "", (("X-Api-Key", ""),), UNAUTHORIZED),
    ("blank-api-key", "", (("X-Api-Key", "   "),), UNAUTHORIZED),
    ("bearer-without-token", "", (("Authorization", "Bearer"),), UNAUTHORIZED),
    ("bearer-blank-token", "", (("Authorization", "Bearer    "),), UNAUTHORIZED),
    ("basic-scheme", "", (("Authorization", "Basic {basic}"),), UNAUTHORIZED),
    ("token-scheme", "", (("Authorization", "Token {key}"),), UNAUTHORIZED),
    ("key-without-scheme", "", (("Authorization", "{key}"),), UNAUTHORIZED),
    ("empty-query-key", "?key=", (), UNAUTHORIZED),
    ("if-none-match-star-without-key", "", (("If-None-Match", "*"),), UNAUTHORIZED),
    ("unknown-key", "", (("X-Api-Key", "ofl_not-a-key"),), FORBIDDEN),
    ("oversized-api-key", "", (("X-Api-Key", "k" * TEN_KB),), FORBIDDEN),
    ("oversized-bearer", "", (("Authorization", "Bearer " + "k" * TEN_KB),), FORBIDDEN),
    ("oversized-query-key", "?key=" + "k" * TEN_KB, (), FORBIDDEN),
    ("key-with-control-char", "", (("X-Api-Key", "{key}\x7f"),), FORBIDDEN),
    ("key-header-twice", "", (("X-Api-Key", "{key}"), ("X-Api-Key", "junk")), FORBIDDEN),
    ("query-key-twice", "?key={key}&key={key}", (), FORBIDDEN),
    ("junk-then-bearer", "", (("X-Api-Key", "junk"), ("Authorization", "Bearer {key}")), FORBIDDEN),
    ("other-scope-key", "", (("X-Api-Key", "{other}"),), FORBIDDEN),
    ("if-none-match-star-junk-key", "", (("If-None-Match", "*"), ("X-Api-Key", "junk")), FORBIDDEN),
)


def credential_cases() -> Iterator[Case]:
    for route, method, path, body, key, other in AUTHENTICATED:
        basic = base64.b64encode(f"{key}:".encode()).decode()
        values = {"key": key, "other": other, "basic": basic}
        for name, query, headers, status in CREDENTIALS:
            sent = tuple((header, value.format(**values)) for header, value in headers)
            target = path + query.format(**values)
            yield Case(f"{route}-{name}", method, target, status, sent, body)


@pytest.mark.parametrize("case", params(credential_cases()))
def test_junk_credentials_never_pass(local_stack, fresh_key, case):
    assert_refused(send(local_stack, case, fresh_key), case)


UNSUPPORTED, TOO_LARGE = HTTPStatus.UNSUPPORTED_MEDIA_TYPE, HTTPStatus.REQUEST_ENTITY_TOO_LARGE
# (name, Content-Type or None, body, status), for both POST routes.
BODIES = (
    ("text-plain", "text/plain", b'{"scope": "global"}', UNSUPPORTED),
    ("form-urlencoded", "application/x-www-form-urlencoded", b"scope=global", UNSUPPORTED),
    ("multipart", "multipart/form-data; boundary=x", b"--x\r\n\r\nglobal\r\n--x--", UNSUPPORTED),
    ("xml", "application/xml", b"<scope>global</scope>", UNSUPPORTED),
    ("missing-content-type", None, b"scope=global", BAD_REQUEST),
    ("upper-case-media-type", "Application/JSON", b"[]", BAD_REQUEST),
    ("charset-parameter", "application/json; charset=utf-8", b"[]", BAD_REQUEST),
    ("empty", JSON, b"", BAD_REQUEST),
    ("not-json", JSON, b"not json", BAD_REQUEST),
    ("truncated", JSON, b'{"scope": ', BAD_REQUEST),
    ("trailing-garbage", JSON, b'{"x": 1} x', BAD_REQUEST),
    ("single-quotes", JSON, b"{'x': 1}", BAD_REQUEST),
    ("invalid-utf8", JSON, b'{"x": "\xff"}', BAD_REQUEST),
    ("array", JSON, b"[]", BAD_REQUEST),
    ("string", JSON, b'"global"', BAD_REQUEST),
    ("null", JSON, b"null", BAD_REQUEST),
    ("boolean", JSON, b"true", BAD_REQUEST),
    ("number", JSON, b"42", BAD_REQUEST),
    ("huge-number", JSON, b"1e999", BAD_REQUEST),
    ("nan", JSON, b"NaN", BAD_REQUEST),
    ("empty-object", JSON, b"{}", BAD_REQUEST),
    ("deeply-nested", JSON, DEEP.encode(), BAD_REQUEST),
    ("over-gateway-limit", JSON, b"x" * (MAX_REQUEST_BYTES + 1), TOO_LARGE),
)


def match_body(
    *,
    match_id: str = '"bad-input-m1"',
    players: str = '["bad-input-user"]',
    finished_at: str = '"2026-11-21T18:04:00Z"',
    extra: str = "",
) -> bytes:
    """A match document with raw JSON for each field, so a case can put any text in one."""
    fields = f'"id": {match_id}, "players": {players}, "finished_at": {finished_at}{extra}'
    return ("{" + fields + "}").encode()


TOO_MANY_PLAYERS = json.dumps([f"p{number}" for number in range(101)])
MATCH_BODIES = (
    ("missing-fields", b'{"id": "bad-input-m1"}', BAD_REQUEST),
    ("id-null", match_body(match_id="null"), BAD_REQUEST),
    ("id-number", match_body(match_id="1001"), BAD_REQUEST),
    ("id-huge-number", match_body(match_id="1e999"), BAD_REQUEST),
    ("id-nan", match_body(match_id="NaN"), BAD_REQUEST),
    ("id-array", match_body(match_id='["m-1"]'), BAD_REQUEST),
    ("id-object", match_body(match_id='{"id": "m-1"}'), BAD_REQUEST),
    ("id-traversal", match_body(match_id='"../m-1001"'), BAD_REQUEST),
    ("id-slash", match_body(match_id='"m/1001"'), BAD_REQUEST),
    ("id-nul", match_body(match_id='"m-1\\u0000"'), BAD_REQUEST),
    ("id-newline", match_body(match_id='"m-1001\\n"'), BAD_REQUEST),
    ("id-latin-letter", match_body(match_id='"m-\\u00e9"'), BAD_REQUEST),
    ("id-emoji", match_body(match_id='"m-\\ud83d\\ude00"'), BAD_REQUEST),
    ("id-right-to-left", match_body(match_id='"\\u202em-1"'), BAD_REQUEST),
    ("id-oversized", match_body(match_id=f'"{"a" * TEN_KB}"'), BAD_REQUEST),
    ("players-string", match_body(players='"42"'), BAD_REQUEST),
    ("players-empty", match_body(players="[]"), BAD_REQUEST),
    ("players-numbers", match_body(players="[42, 17]"), BAD_REQUEST),
    ("players-null-item", match_body(players="[null]"), BAD_REQUEST),
    ("players-nested", match_body(players='[["42"]]'), BAD_REQUEST),
    ("players-object", match_body(players='{"42": true}'), BAD_REQUEST),
    ("players-too-many", match_body(players=TOO_MANY_PLAYERS), BAD_REQUEST),
    ("players-repeated", match_body(players='["p1", "p1"]'), BAD_REQUEST),
    ("players-unicode-digits", match_body(players='["\\u0664\\u0662"]'), BAD_REQUEST),
    ("finished-at-number", match_body(finished_at="20261121"), BAD_REQUEST),
    ("finished-at-huge-number", match_body(finished_at="1e999"), BAD_REQUEST),
    ("finished-at-bool", match_body(finished_at="true"), BAD_REQUEST),
    ("finished-at-object", match_body(finished_at="{}"), BAD_REQUEST),
    ("finished-at-words", match_body(finished_at='"yesterday"'), BAD_REQUEST),
    ("finished-at-no-zone", match_body(finished_at='"2026-11-21T18:04:00"'), BAD_REQUEST),
    ("finished-at-not-utc", match_body(finished_at='"2026-11-21T18:04:00+01:00"'), BAD_REQUEST),
    ("extra-nan", match_body(extra=', "score": NaN'), BAD_REQUEST),
    ("extra-infinity", match_body(extra=', "score": -Infinity'), BAD_REQUEST),
    ("extra-huge-number", match_body(extra=', "score": 1e999'), BAD_REQUEST),
    ("extra-huge-integer", match_body(extra=', "score": ' + "9" * 5_000), BAD_REQUEST),
    ("extra-lone-surrogate", match_body(extra=', "note": "\\ud800"'), BAD_REQUEST),
    ("extra-deeply-nested", match_body(extra=f', "deep": {DEEP}'), BAD_REQUEST),
    ("extra-one-megabyte", match_body(extra=f', "pad": "{"x" * ONE_MB}"'), TOO_LARGE),
)
INVALIDATION_BODIES = (
    ("scope-unknown", b'{"scope": "everything"}', BAD_REQUEST),
    ("scope-array", b'{"scope": ["global"]}', BAD_REQUEST),
    ("scope-null", b'{"scope": null}', BAD_REQUEST),
    ("scope-huge-number", b'{"scope": 1e999}', BAD_REQUEST),
    ("scope-nan", b'{"scope": NaN}', BAD_REQUEST),
    ("scope-lone-surrogate", b'{"scope": "\\ud800"}', BAD_REQUEST),
    ("scope-and-feed", b'{"scope": "global", "feed": "catalog"}', BAD_REQUEST),
    ("unknown-field", b'{"scope": "global", "purge": true}', BAD_REQUEST),
    ("unknown-surrogate-field", b'{"scope": "global", "\\ud800": 1}', BAD_REQUEST),
    ("feed-number", b'{"feed": 42}', BAD_REQUEST),
    ("feed-upper-case", b'{"feed": "Catalog"}', BAD_REQUEST),
    ("feed-traversal", b'{"feed": "../catalog"}', BAD_REQUEST),
    ("feed-nul", b'{"feed": "catalog\\u0000"}', BAD_REQUEST),
    ("feed-latin-letter", b'{"feed": "caf\\u00e9"}', BAD_REQUEST),
    ("feed-unknown", b'{"feed": "no-such-feed"}', NOT_FOUND),
    ("client-null", b'{"client": null}', BAD_REQUEST),
    ("client-object", b'{"client": {"id": "demo"}}', BAD_REQUEST),
    ("client-emoji", b'{"client": "\\ud83d\\ude00"}', BAD_REQUEST),
    ("client-oversized", b'{"client": "' + b"a" * TEN_KB + b'"}', BAD_REQUEST),
    ("soft-string", b'{"scope": "global", "soft": "true"}', BAD_REQUEST),
    ("soft-number", b'{"scope": "global", "soft": 1}', BAD_REQUEST),
    ("soft-null", b'{"scope": "global", "soft": null}', BAD_REQUEST),
    ("collection-null", b'{"collection": null}', BAD_REQUEST),
    ("collection-array", b'{"collection": ["users/42/matches"]}', BAD_REQUEST),
    ("collection-short", b'{"collection": "users/42"}', BAD_REQUEST),
    ("collection-traversal", b'{"collection": "users/../matches"}', BAD_REQUEST),
    ("collection-extra-segment", b'{"collection": "users/42/matches/x"}', BAD_REQUEST),
    ("collection-unknown", b'{"collection": "teams/1/matches"}', BAD_REQUEST),
    ("collection-unicode-id", b'{"collection": "users/\\u0664\\u0662/matches"}', BAD_REQUEST),
    ("collection-with-soft", b'{"collection": "users/42/matches", "soft": true}', BAD_REQUEST),
    ("one-megabyte-field", b'{"scope": "global", "pad": "' + b"x" * ONE_MB + b'"}', BAD_REQUEST),
    ("one-megabyte-feed", b'{"feed": "' + b"a" * ONE_MB + b'"}', BAD_REQUEST),
)


def body_cases() -> Iterator[Case]:
    for path in ("/matches", "/invalidations"):
        for name, content_type, body, status in BODIES:
            headers = ADMIN if content_type is None else (*ADMIN, ("Content-Type", content_type))
            by_gateway = status == TOO_LARGE
            yield Case(f"{path[1:]}-{name}", "POST", path, status, headers, body, by_gateway)
    for path, bodies in (("/matches", MATCH_BODIES), ("/invalidations", INVALIDATION_BODIES)):
        for name, body, status in bodies:
            headers = (*ADMIN, ("Content-Type", JSON))
            yield Case(f"{path[1:]}-{name}", "POST", path, status, headers, body)


@pytest.mark.parametrize("case", params(body_cases()))
def test_bad_body_is_refused_with_a_problem(local_stack, fresh_key, case):
    assert_refused(send(local_stack, case, fresh_key), case)


def raw_exchange(base_url: str, head: bytes, body: bytes = b"") -> Reply:
    """Send bytes as they are, request line and all, and read the answer."""
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(head + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        answer = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, answer, response.read())


# Requests API Gateway refuses before any route: what is sent, with `{key}` for a fresh key.
UNPARSEABLE = (
    ("space-in-query", "GET /feeds/catalog.json?key={key}&category=a b HTTP/1.1\r\n", b""),
    ("space-in-path", "GET /feeds/cat alog.json?key={key} HTTP/1.1\r\n", b""),
    (
        "content-length-not-a-number",
        "POST /invalidations?key={key} HTTP/1.1\r\nContent-Length: abc\r\n",
        b'{"scope": "global"}',
    ),
    (
        "content-length-negative",
        "GET /feeds/catalog.json?key={key} HTTP/1.1\r\nContent-Length: -5\r\n",
        b"",
    ),
)


@pytest.mark.parametrize(
    ("line", "body"), [pytest.param(*case[1:], id=case[0]) for case in UNPARSEABLE]
)
def test_a_request_that_does_not_parse_is_gateway_400_and_its_key_is_never_logged(
    local_stack, line, body
):
    # GIVEN a key of its own, so the stack's log can be searched for it
    key = create_stack_key(local_stack)[0]
    head = (line.format(key=key) + f"Host: x\r\nX-Api-Key: {key}\r\n\r\n").encode()

    # WHEN the request goes out as it is
    reply = raw_exchange(local_stack.base_url, head, body)

    # THEN API Gateway's own 400, and no log line holds the key
    assert reply.status == HTTPStatus.BAD_REQUEST
    assert reply.headers["content-type"] == JSON
    assert json.loads(reply.body) == {"message": "Bad Request"}
    assert key not in local_stack.log.read_text(errors="replace")


# Headers public reads do not use: (name, header, value, whether it names the answer's ETag).
# `{etag}` is the answer's ETag, `{bare}` the same without its quotes.
IGNORED_HEADERS = (
    ("unquoted-etag", "If-None-Match", "{bare}", False),
    ("oversized-etag", "If-None-Match", '"' + "a" * TEN_KB + '"', False),
    ("weak-prefix-alone", "If-None-Match", "W/", False),
    ("weak-empty-tag", "If-None-Match", 'W/""', False),
    ("empty-tag", "If-None-Match", '""', False),
    ("only-commas", "If-None-Match", ",,,", False),
    ("control-char-tag", "If-None-Match", '"\x7f"', False),
    ("many-tags", "If-None-Match", MANY_TAGS, False),
    ("many-tags-then-etag", "If-None-Match", MANY_TAGS + ", {etag}", True),
    ("weak-etag", "If-None-Match", "W/{etag}", True),
    ("star", "If-None-Match", "*", True),
    ("bearer-without-token", "Authorization", "Bearer", False),
    ("other-scheme", "Authorization", "Basic Zm9vOmJhcg==", False),
    ("oversized-bearer", "Authorization", "Bearer " + "k" * TEN_KB, False),
    ("unknown-api-key", "X-Api-Key", "junk", False),
)
PUBLIC_READS = ("version", "index", "snapshot", "match")


@pytest.fixture(scope="module")
def public_reads(local_stack: RunningStack) -> dict[str, str]:
    """Each public read's path, for a user of this module's own."""
    user = f"bad-input-{uuid.uuid4().hex[:12]}"
    pointer = exchange(local_stack.base_url, "GET", f"/users/{user}/matches/version", (), b"")
    version = json.loads(pointer.body)["version"]
    return {
        "version": f"/users/{user}/matches/version",
        "index": f"/users/{user}/matches/index",
        "snapshot": f"/users/{user}/matches/index?version={version}",
        "match": "/matches/m-1001",
    }


@pytest.mark.parametrize("read", PUBLIC_READS)
@pytest.mark.parametrize(
    ("header", "value", "names_etag"),
    [pytest.param(*case[1:], id=case[0]) for case in IGNORED_HEADERS],
)
def test_junk_header_leaves_a_public_read_unchanged(
    local_stack, public_reads, read, header, value, names_etag
):
    # GIVEN the read's answer without the header
    path = public_reads[read]
    clean = exchange(local_stack.base_url, "GET", path, (), b"")
    etag = clean.headers["etag"]
    # WHEN the same read carries junk (or its own ETag wrapped in junk)
    sent = value.format(etag=etag, bare=etag.strip('"'))
    reply = exchange(local_stack.base_url, "GET", path, ((header, sent),), b"")
    # THEN it answers as before, or 304 where the header names the ETag
    if names_etag:
        assert (reply.status, reply.body) == (HTTPStatus.NOT_MODIFIED, b"")
        assert reply.headers["etag"] == etag
    else:
        assert (reply.status, reply.body) == (clean.status, clean.body)
        assert reply.headers.get("location") == clean.headers.get("location")
    assert reply.headers["cache-control"] == clean.headers["cache-control"]


def test_stack_still_serves_valid_requests_after_the_corpus(local_stack, fresh_key):
    valid = (
        ("GET", "/feeds/catalog.json?category=shoes", KEYED, b"", {200, 307}),
        ("GET", "/users/42/matches/version", (), b"", {200}),
        ("GET", "/matches/m-1001", (), b"", {200}),
        ("POST", "/invalidations", ADMIN, PROBE_INVALIDATION, {202}),
    )
    for method, target, headers, body, statuses in valid:
        # WHEN, after every case above, each function is asked for something valid
        reply = exchange(local_stack.base_url, method, target, with_key(headers, fresh_key), body)
        # THEN each answers as usual
        assert reply.status in statuses, f"{method} {target}: {reply.status} {reply.body[:300]!r}"
