"""The HTTP front over real HTTP: payload 2.0 events in, exact answers out, API Gateway's errors.

Functions here are Python callables in place of handler modules, so each test can see the
event the front built and choose the answer it writes back.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any

import pytest
import requests

from offload_local.gateway import Gateway, GatewayRequestHandler, TokenBucket
from offload_local.lambdas import Containers
from offload_local.servers import Server
from offload_local.template import ROOT, Function, Route

BINARY = bytes(range(256)) * 4


class Inline(Containers):
    """A function whose body is a Python callable instead of a handler module."""

    def __init__(self, function: Function, body: Callable[[dict], Any]) -> None:
        super().__init__(function)
        self.body = body

    def invoke(self, event: dict) -> Any:
        return self.body(event)


def answer(event: dict) -> Any:
    path = event["rawPath"]
    if path == "/binary":
        body = base64.b64encode(BINARY).decode()
        headers = {"Content-Type": "application/octet-stream"}
        return {"statusCode": 200, "headers": headers, "isBase64Encoded": True, "body": body}
    if path == "/cookies":
        return {
            "statusCode": 418,
            "headers": {"X-Custom": "yes", "Content-Length": "999"},
            "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
            "body": "short and stout",
        }
    if path == "/fail":
        raise RuntimeError("boom")
    if path == "/plain":
        return ["any", "json", "value"]
    if path == "/slow":
        time.sleep(0.5)
        return {"statusCode": 200, "body": event["requestContext"]["requestId"]}
    if path == "/hang":
        time.sleep(2)
    if path.startswith("/items/"):
        return {"statusCode": 200, "body": event["routeKey"]}
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(event),
    }


ECHO = Function(
    logical_id="Echo",
    code_uri=ROOT,
    handler="echo.lambda_handler",
    environment={},
    routes=(
        Route("ANY", "/echo/{proxy+}"),
        Route("GET", "/items/{id}"),
        Route("GET", "/items/special"),
        *(Route("GET", path) for path in ("/binary", "/cookies", "/fail", "/plain", "/slow")),
    ),
    timeout=29,
)
HANGS = Function(
    logical_id="Hangs",
    code_uri=ROOT,
    handler="hangs.lambda_handler",
    environment={},
    routes=(Route("GET", "/hang"),),
    timeout=1,
)


@pytest.fixture(scope="module")
def front() -> Iterator[str]:
    """The front's URL on a free port, serving the Echo and Hangs functions."""
    gateway = Gateway(
        [ECHO, HANGS],
        {"Echo": Inline(ECHO, answer), "Hangs": Inline(HANGS, answer)},
        account_id="123456789012",
    )
    server = Server(gateway, port=0, what="API", hint="", request_handler=GatewayRequestHandler)
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def get(front: str) -> Callable[..., requests.Response]:
    def get(path: str, **kwargs: Any) -> requests.Response:
        with requests.Session() as session:
            session.trust_env = False
            return session.request(kwargs.pop("method", "GET"), front + path, timeout=10, **kwargs)

    return get


def test_event_is_payload_2_0(front):
    # GIVEN a request with a repeated header, cookies, an encoded path and a repeated parameter
    connection = http.client.HTTPConnection(front.removeprefix("http://"), timeout=10)
    connection.putrequest("GET", "/echo/a%20b/c?x=1&x=2&y=%2F&empty=", skip_accept_encoding=True)
    connection.putheader("X-Dup", "one")
    connection.putheader("X-Dup", "two")
    connection.putheader("Cookie", "session=abc; theme=dark")
    connection.putheader("User-Agent", "gateway-test")
    connection.endheaders()

    # WHEN the front hands it to the function
    response = connection.getresponse()
    event = json.loads(response.read())
    connection.close()

    # THEN the function sees it as an HTTP API would hand it over
    assert response.status == HTTPStatus.OK
    assert event["version"] == "2.0"
    assert event["routeKey"] == "ANY /echo/{proxy+}"
    assert event["rawPath"] == "/echo/a b/c"
    assert event["rawQueryString"] == "x=1&x=2&y=%2F&empty="
    assert event["queryStringParameters"] == {"x": "1,2", "y": "/", "empty": ""}
    assert event["pathParameters"] == {"proxy": "a b/c"}
    assert event["cookies"] == ["session=abc", "theme=dark"]
    headers = event["headers"]
    assert headers["x-dup"] == "one,two"
    assert headers["user-agent"] == "gateway-test"
    assert "cookie" not in headers
    assert all(name == name.lower() for name in headers)
    assert headers["x-forwarded-for"] == "127.0.0.1"
    context = event["requestContext"]
    assert context["http"] == {
        "method": "GET",
        "path": "/echo/a b/c",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "gateway-test",
    }
    assert context["routeKey"] == event["routeKey"]
    assert context["stage"] == "$default"
    assert context["requestId"] == response.getheader("apigw-requestid")
    assert event["isBase64Encoded"] is False
    assert "body" not in event


def test_text_body_is_passed_as_is_and_binary_as_base64(get):
    text = get("/echo/text", method="POST", json={"é": 1})
    assert text.json()["body"] == '{"\\u00e9": 1}'
    assert text.json()["isBase64Encoded"] is False

    binary = get(
        "/echo/binary",
        method="PUT",
        data=BINARY,
        headers={"Content-Type": "application/octet-stream"},
    )
    event = binary.json()
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == BINARY
    assert event["requestContext"]["http"]["method"] == "PUT"


def test_base64_answer_is_written_back_byte_exact(get):
    response = get("/binary")
    assert response.status_code == HTTPStatus.OK
    assert response.content == BINARY
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Length"] == str(len(BINARY))


def test_status_headers_and_each_cookie_are_written_back(front):
    connection = http.client.HTTPConnection(front.removeprefix("http://"), timeout=10)
    connection.request("GET", "/cookies")
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 418
    assert response.getheader("X-Custom") == "yes"
    cookies = [value for name, value in response.getheaders() if name.lower() == "set-cookie"]
    assert cookies == ["a=1; Path=/", "b=2; HttpOnly"]
    # The front, not the function, decides the length of what it sends.
    assert body == b"short and stout"
    assert response.getheader("Content-Length") == str(len(body))


def test_a_bare_json_value_becomes_a_200_json_answer(get):
    response = get("/plain")
    assert response.status_code == HTTPStatus.OK
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == ["any", "json", "value"]


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/nothing/here", HTTPStatus.NOT_FOUND, "Not Found"),
        ("POST", "/items/1", HTTPStatus.NOT_FOUND, "Not Found"),
        ("GET", "/fail", HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error"),
        ("GET", "/hang", HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error"),
    ],
)
def test_api_gateway_answers_for_itself(get, method, path, status, message):
    response = get(path, method=method)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"message": message}
    assert response.headers["apigw-requestid"]


def test_most_specific_route_wins(get):
    assert get("/items/special").text == "GET /items/special"
    assert get("/items/7").text == "GET /items/{id}"


@pytest.mark.serial  # timed against the clock
def test_requests_are_served_concurrently_by_separate_invocations(get):
    # GIVEN eight requests to a function that takes half a second
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: get("/slow"), range(8)))

    # THEN they ran side by side, each its own invocation
    assert time.monotonic() - started < 2.5
    assert all(answer.status_code == HTTPStatus.OK for answer in answers)
    assert len({answer.text for answer in answers}) == 8


def test_unknown_route_on_the_stack_answers_as_api_gateway(local_stack):
    with requests.Session() as session:
        session.trust_env = False
        response = session.get(local_stack.url("/no/such/route"), timeout=10)
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json() == {"message": "Not Found"}


def test_throttling_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=1, burst=2)
    assert [bucket.take() for _ in range(3)] == [True, True, False]
