"""S3 event notifications for the emulator: real S3 event records, delivered to local functions.

moto in server mode cannot invoke a function running in this process, so a WSGI middleware
around it watches for successful object writes and deletes (what S3 itself notifies on) and
hands each one, as an S3 event record, to `Notifications`. That delivers records the way S3
does: to every matching event source of the template, one object per event, through
Lambda's asynchronous invocation (`AsyncInvoker`: retries, then the on-failure destination).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote_plus
from xml.etree import ElementTree

from offload_local.invocations import AsyncInvoker
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
    """The template's S3 event sources, invoked asynchronously as Lambda does for S3."""

    def __init__(
        self,
        functions: Iterable[Function],
        containers: Mapping[str, Containers],
        *,
        region: str,
        invoker: AsyncInvoker,
    ) -> None:
        self._subscriptions = [
            _Subscription(notification, function, containers[function.logical_id])
            for function in functions
            for notification in function.notifications
        ]
        self._region = region
        self._invoker = invoker
        self._sequencer = _Sequencer()

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
            self._invoker.submit(
                subscription.function, subscription.containers, {"Records": [record]}
            )
