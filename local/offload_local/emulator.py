"""The embedded AWS emulator: moto in server mode on loopback, with the template's resources.

Built from the same parts as moto's ThreadedMotoServer, which neither takes a middleware
(needed for S3 events) nor returns when its port is busy (its thread exits, `start` waits on).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import boto3
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.model_instances import reset_model_data
from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

from offload_local.cors import BucketCors, CorsRule
from offload_local.isolation import serialise_dynamodb
from offload_local.presigned import PresignedUrls, WsgiApp
from offload_local.resources import create_resources
from offload_local.s3events import ObjectChange, S3EventSource
from offload_local.servers import QuietRequestHandler, Server
from offload_local.template import Stack


class _Handler(MotoRequestHandler, QuietRequestHandler):
    """moto's request handling (underscored S3 metadata headers), without an access log."""


def _stored_object(bucket: str, key: str) -> tuple[int, str, str | None] | None:
    """Size, eTag and version of an object, read from moto's in-process state."""
    from moto.s3.models import s3_backends

    stored = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(bucket, key)
    if stored is None:
        return None
    version = stored.version_id if stored.version_id not in (None, "null") else None
    return stored.size, stored.etag.strip('"'), version


def _forgetting_models(app: Any) -> Any:
    """moto's app, without its record of every model object ever made.

    moto lists each object it creates for its server's dashboard and never lets go: every
    DynamoDB transaction deep-copies the table for rollback, so a long-running stack would
    keep a copy of the whole table per transaction (megabytes per recorded match).
    """

    def forgetting(environ: dict[str, Any], start_response: Any) -> Any:
        try:
            return app(environ, start_response)
        finally:
            reset_model_data()

    return forgetting


class Emulator:
    """moto on 127.0.0.1 (a free port when `port` is 0), reporting S3 object changes."""

    def __init__(
        self,
        stack: Stack,
        *,
        port: int = 0,
        on_change: Callable[[ObjectChange], None],
        lambda_api: Callable[[WsgiApp], WsgiApp] = lambda app: app,
    ) -> None:
        """`lambda_api` wraps moto with the Lambda Invoke API (moto's would need Docker)."""
        self.stack = stack
        app: Any = DomainDispatcherApplication(create_backend_app)
        events = S3EventSource(_forgetting_models(app), on_change, lookup=_stored_object)
        buckets = {
            name: [CorsRule.of(rule) for rule in rules]
            for name, rules in stack.bucket_cors_rules().items()
        }
        # CORS outermost: S3 adds its CORS headers to its refusals too.
        self._app = lambda_api(
            BucketCors(PresignedUrls(events, region=stack.region), rules=buckets.get)
        )
        self._server = self._serve_on(port)
        self._outage = threading.Lock()

    @property
    def endpoint_url(self) -> str:
        return self._server.url

    def start(self) -> None:
        serialise_dynamodb()
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def pause(self) -> None:
        """Stop answering, as an AWS outage would; the data stays (moto's backends live on)."""
        with self._outage:
            self._server.stop()

    def resume(self) -> None:
        """Answer again, on the same port, with the data as the outage found it."""
        with self._outage:
            port = self._server.port
            self._server.stop()  # a no-op unless it still runs
            self._server = self._serve_on(port)
            self._server.start()

    def _serve_on(self, port: int) -> Server:
        return Server(
            self._app,
            port=port,
            what="AWS emulator",
            hint="choose another with EMULATOR_PORT, or leave it unset for a free one",
            request_handler=_Handler,
        )

    def create_resources(self, session: boto3.Session) -> None:
        """The template's tables, buckets and queues, as it defines them."""
        def client(service: str) -> Any:
            return session.client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]

        create_resources(self.stack, client)
