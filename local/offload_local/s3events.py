"""S3 event notifications for the emulator: real S3 event records, delivered to local functions.

moto in server mode cannot invoke a function running in this process, so a WSGI middleware
around it watches for successful object writes and deletes (what S3 itself notifies on) and
hands each one, as an S3 event record, to `Notifications`. That delivers records the way S3
and Lambda's asynchronous invocation do: to every matching event source of the template, one
object per event, on worker threads that block on a queue while idle, retrying a failed
invocation and then sending it to the function's on-failure destination.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote_plus
from xml.etree import ElementTree

from offload_local.lambdas import Containers
from offload_local.template import Function, S3Notification

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# Query parameters that leave a PUT or DELETE a plain object write or delete. Any other
# sub-resource (?acl, ?tagging, ?uploadId&partNumber, ...) creates or removes no object.
_PLAIN = {"x-id", "versionId"}
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass(frozen=True, slots=True)
class ObjectChange:
    """One object created or removed, with what its event record carries."""

    event_name: str
    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    source_ip: str = "127.0.0.1"
    request_id: str = ""


class _Sequencer:
    """S3's per-bucket ordering token: hex, fixed width, increasing."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return f"{self._last:018X}"


def event_record(
    change: ObjectChange, *, region: str, configuration_id: str, sequencer: str
) -> dict[str, Any]:
    """An S3 event record, as S3 sends it (keys URL-encoded, size and eTag on creation)."""
    obj: dict[str, Any] = {"key": quote_plus(change.key, safe="/")}
    if change.event_name.startswith("ObjectCreated"):
        obj["size"] = change.size or 0
        obj["eTag"] = change.etag or ""
    if change.version_id:
        obj["versionId"] = change.version_id
    obj["sequencer"] = sequencer
    now = datetime.now(UTC)
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "eventName": change.event_name,
        "userIdentity": {"principalId": "AWS:LOCAL"},
        "requestParameters": {"sourceIPAddress": change.source_ip},
        "responseElements": {
            "x-amz-request-id": change.request_id or secrets.token_hex(8).upper(),
            "x-amz-id-2": secrets.token_urlsafe(48),
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {
                "name": change.bucket,
                "ownerIdentity": {"principalId": "LOCAL"},
                "arn": f"arn:aws:s3:::{change.bucket}",
            },
            "object": obj,
        },
    }


class S3EventSource:
    """WSGI middleware around moto's app: reports each object a request created or removed."""

    def __init__(
        self,
        app: WsgiApp,
        publish: Callable[[ObjectChange], None],
        lookup: Callable[[str, str], tuple[int, str, str | None] | None] = lambda b, k: None,
    ) -> None:
        self.app = app
        self.publish = publish
        self.lookup = lookup

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        target = _target(environ)
        if target is None:
            return self.app(environ, start_response)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.update(status=int(status.split()[0]), headers=headers)
            return start_response(status, headers, exc_info)

        chunks = self.app(environ, capture)
        try:
            body = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        if 200 <= captured.get("status", 500) < 300:
            headers = {name.lower(): value for name, value in captured["headers"]}
            try:
                for change in self._changes(environ, target, headers, body):
                    self.publish(change)
            except Exception:  # a notification must never fail the S3 request itself
                log.exception("could not build S3 events for %s", environ.get("PATH_INFO"))
        return [body]

    def _changes(
        self,
        environ: dict[str, Any],
        target: tuple[str, str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Iterable[ObjectChange]:
        operation, bucket, key = target
        common = {
            "bucket": bucket,
            "source_ip": environ.get("REMOTE_ADDR", "127.0.0.1"),
            "request_id": headers.get("x-amz-request-id", ""),
        }
        if operation == "DeleteObjects":
            for deleted in ElementTree.fromstring(body).iter(f"{_S3_NS}Deleted"):
                marker = deleted.findtext(f"{_S3_NS}DeleteMarker") == "true"
                yield ObjectChange(
                    event_name=_removed(marker),
                    key=deleted.findtext(f"{_S3_NS}Key") or "",
                    **common,
                )
            return
        if operation == "Delete":
            marker = headers.get("x-amz-delete-marker") == "true"
            yield ObjectChange(event_name=_removed(marker), key=key, **common)
            return
        stored = self.lookup(bucket, key)
        if stored is None:  # already gone again: S3 still reports what the request did
            size = int(
                environ.get("HTTP_X_AMZ_DECODED_CONTENT_LENGTH")
                or environ.get("CONTENT_LENGTH")
                or 0
            )
            stored = (size, headers.get("etag", "").strip('"'), None)
        size, etag, version_id = stored
        yield ObjectChange(
            event_name=f"ObjectCreated:{operation}",
            key=key,
            size=size,
            etag=etag,
            version_id=version_id,
            **common,
        )


def _removed(delete_marker: bool) -> str:
    return "ObjectRemoved:DeleteMarkerCreated" if delete_marker else "ObjectRemoved:Delete"


def _target(environ: dict[str, Any]) -> tuple[str, str, str] | None:
    """(operation, bucket, key) when the request may create or remove objects, else None."""
    method = environ["REQUEST_METHOD"]
    if method not in {"PUT", "POST", "DELETE"}:
        return None
    host = environ.get("HTTP_HOST", "").rsplit(":", 1)[0]
    # WSGI hands over the decoded path as latin-1; S3 keys are UTF-8.
    path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
    if host.endswith(".localhost"):  # virtual-hosted style
        bucket, key = host.removesuffix(".localhost"), path.lstrip("/")
    else:
        bucket, _, key = path.lstrip("/").partition("/")
    query = {name for name, _ in parse_qsl(environ.get("QUERY_STRING", ""), True)}
    if not bucket:
        return None
    if not key:
        return ("DeleteObjects", bucket, "") if method == "POST" and "delete" in query else None
    if method == "PUT" and query <= _PLAIN:
        copy = "HTTP_X_AMZ_COPY_SOURCE" in environ
        return ("Copy" if copy else "Put", bucket, key)
    if method == "POST" and "uploadId" in query:
        return ("CompleteMultipartUpload", bucket, key)
    if method == "DELETE" and query <= _PLAIN:
        return ("Delete", bucket, key)
    return None


@dataclass(frozen=True, slots=True)
class _Subscription:
    notification: S3Notification
    function: Function
    containers: Containers


class Notifications:
    """Asynchronous invocation of the template's S3 event sources, retries and failures."""

    def __init__(
        self,
        functions: Iterable[Function],
        containers: Mapping[str, Containers],
        *,
        region: str,
        workers: int = 4,
        retry_delays: tuple[float, ...] = (1.0, 2.0),
        sqs: Callable[[], Any] | None = None,
    ) -> None:
        self._subscriptions = [
            _Subscription(notification, function, containers[function.logical_id])
            for function in functions
            for notification in function.notifications
        ]
        self._region = region
        self._retry_delays = retry_delays
        self._sqs = sqs
        self._sequencer = _Sequencer()
        # Idle workers block on the executor's queue: nothing runs until an event arrives.
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="s3-events")
        self._pending = 0
        self._idle = threading.Condition()

    def publish(self, change: ObjectChange) -> None:
        """Queue one event per matching event source, as S3 does."""
        sequencer = self._sequencer.next()
        for subscription in self._subscriptions:
            if not subscription.notification.matches(change.bucket, change.event_name, change.key):
                continue
            record = event_record(
                change,
                region=self._region,
                configuration_id=subscription.notification.name,
                sequencer=sequencer,
            )
            with self._idle:
                self._pending += 1
            self._executor.submit(self._deliver, subscription, {"Records": [record]})

    def wait_idle(self, timeout: float) -> bool:
        """Block until every queued event has been delivered or dead-lettered."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _deliver(self, subscription: _Subscription, event: dict[str, Any]) -> None:
        function = subscription.function
        attempts = 1 + min(function.max_retry_attempts, len(self._retry_delays))
        try:
            for attempt in range(1, attempts + 1):
                try:
                    subscription.containers.invoke(event)
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
