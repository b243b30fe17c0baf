"""Lambda's invocations for the emulator: asynchronous delivery, and the Invoke API.

moto would run a function in Docker; here every function of the template runs in-process
(`Containers`). `AsyncInvoker` does what Lambda's asynchronous invocation does for S3 events
and `Event` invokes alike: queue the event, run it on a worker thread, retry a failure
(MaximumRetryAttempts) and then send it to the on-failure destination. `LambdaApi` is a WSGI
middleware in front of moto that answers `POST /2015-03-31/functions/{name}/invocations`
(boto3's `lambda.invoke`) for the template's functions, so a handler that starts another
function reaches it locally exactly as in AWS.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from offload_local.lambdas import Containers
from offload_local.template import Function

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

INVOKE_PATH = re.compile(r"/2015-03-31/functions/(?P<name>[^/]+)/invocations")
# `function:name` or `function:name:qualifier` at the end of an ARN, or the bare name.
_NAME_IN_ARN = re.compile(r"(?:.*:function:)?(?P<name>[^:]+)(?::[^:]+)?")


class AsyncInvoker:
    """Lambda's asynchronous invocation: queued, run, retried, then dead-lettered."""

    def __init__(
        self,
        *,
        workers: int = 4,
        retry_delays: tuple[float, ...] = (1.0, 2.0),
        sqs: Callable[[], Any] | None = None,
    ) -> None:
        self._retry_delays = retry_delays
        self._sqs = sqs
        # Idle workers block on the executor's queue: nothing runs until an event arrives.
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="async-invoke")
        self._pending = 0
        self._idle = threading.Condition()

    def submit(self, function: Function, containers: Containers, event: dict[str, Any]) -> None:
        with self._idle:
            self._pending += 1
        self._executor.submit(self._deliver, function, containers, event)

    def wait_idle(self, timeout: float) -> bool:
        """Block until every queued event has been delivered or dead-lettered."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _deliver(self, function: Function, containers: Containers, event: dict[str, Any]) -> None:
        attempts = 1 + min(function.max_retry_attempts, len(self._retry_delays))
        try:
            for attempt in range(1, attempts + 1):
                try:
                    containers.invoke(event)
                    return
                except Exception as error:
                    log.warning(
                        "%s failed on attempt %d of %d: %r",
                        function.logical_id,
                        attempt,
                        attempts,
                        error,
                    )
                    if attempt == attempts:
                        self._dead_letter(function, event, error, attempts)
                    else:
                        # Lambda waits a minute, then two; locally a second or two will do.
                        time.sleep(self._retry_delays[attempt - 1])
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _dead_letter(
        self, function: Function, event: dict[str, Any], error: Exception, attempts: int
    ) -> None:
        """Send the failed invocation to the on-failure destination, as Lambda would."""
        if not function.on_failure or ":sqs:" not in function.on_failure or self._sqs is None:
            log.error("%s: event dropped after %d attempts", function.logical_id, attempts)
            return
        sqs = self._sqs()
        queue_url = sqs.get_queue_url(QueueName=function.on_failure.rsplit(":", 1)[1])["QueueUrl"]
        record = {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"{function.arn}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": {"errorMessage": str(error), "errorType": type(error).__name__},
        }
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record))
        log.error("%s: event sent to %s", function.logical_id, function.on_failure)


class LambdaApi:
    """WSGI middleware: Lambda's Invoke for the template's functions; the rest to `app`."""

    def __init__(
        self,
        app: WsgiApp,
        functions: Iterable[Function],
        containers: Mapping[str, Containers],
        invoker: AsyncInvoker,
    ) -> None:
        self.app = app
        self._functions = {function.name: function for function in functions}
        self._containers = containers
        self._invoker = invoker

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        match = INVOKE_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        name = _NAME_IN_ARN.fullmatch(unquote(match["name"]))
        function = self._functions.get(name["name"]) if name else None
        if function is None:
            return _error(
                start_response,
                HTTPStatus.NOT_FOUND,
                "ResourceNotFoundException",
                f"Function not found: {unquote(match['name'])}",
            )
        try:
            event = json.loads(_body(environ) or b"{}")
        except ValueError:
            return _error(
                start_response,
                HTTPStatus.BAD_REQUEST,
                "InvalidRequestContentException",
                "Could not parse request body into json",
            )
        containers = self._containers[function.logical_id]
        kind = environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "RequestResponse")
        request_id = str(uuid.uuid4())
        if kind == "Event":
            self._invoker.submit(function, containers, event)
            start_response("202 Accepted", [("x-amzn-RequestId", request_id)])
            return [b""]
        if kind == "DryRun":
            start_response("204 No Content", [("x-amzn-RequestId", request_id)])
            return [b""]
        headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)]
        try:
            result = containers.invoke(event)
        except Exception as error:
            headers.append(("X-Amz-Function-Error", "Unhandled"))
            result = {"errorMessage": str(error), "errorType": type(error).__name__}
        start_response("200 OK", headers)
        return [json.dumps(result).encode()]


def _body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else b""


def _error(
    start_response: StartResponse, status: HTTPStatus, code: str, message: str
) -> list[bytes]:
    start_response(
        f"{status.value} {status.phrase}",
        [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)],
    )
    return [json.dumps({"Type": "User", "message": message}).encode()]
