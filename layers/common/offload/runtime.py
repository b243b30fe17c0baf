"""The per-container runtime: settings, bound models and AWS clients, each made once."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from offload.config import Settings, get_settings
from offload.signing import UrlSigner, build_signer
from offload.table import bind_models, dynamodb_client

# SSM's default throughput is 40 GetParameters a second, shared by every caller in the account
# and region: a deploy or a fast scale-out of cold containers is throttled. Four attempts
# with the standard mode's jittered exponential backoff (at most 1 + 2 + 4 s of waiting)
# ride out a burst within API Gateway's 30 s (AWS Systems Manager User Guide, "Changing
# Parameter Store throughput"; AWS re:Post Knowledge Center, "ThrottlingException ... Rate
# exceeded" with Parameter Store).
SSM_ATTEMPTS = 4
# Enough for the hit path's parallel round (rate counter, entry, invalidations, HEAD)
# plus lock waiters polling in the same container.
POOL_WORKERS = 8


class Lazy:
    """Values made on first use, once, whichever thread asks first.

    A client costs tens of milliseconds to create (S3's models alone about 70 ms): a function
    creates only those it uses, when it first does, not all of them at import.
    """

    def __init__(self) -> None:
        self._made: dict[str, Any] = {}
        # Reentrant: making one value (the signer) may need another (the S3 client).
        self._lock = threading.RLock()

    def get(self, name: str, make: Callable[[], Any]) -> Any:
        if name in self._made:  # the common case takes no lock
            return self._made[name]
        with self._lock:  # boto3's client creation is not thread-safe
            if name not in self._made:
                self._made[name] = make()
            return self._made[name]


@dataclass(frozen=True, slots=True)
class Runtime:
    """What a function needs to serve: settings, AWS clients, a URL signer, a thread pool."""

    settings: Settings
    pool: ThreadPoolExecutor
    _lazy: Lazy = field(default_factory=Lazy, repr=False, compare=False)

    @property
    def s3(self) -> Any:
        return self._lazy.get(
            "s3",
            lambda: boto3.client(
                "s3", config=client_config(self.settings, signature_version="s3v4")
            ),
        )

    @property
    def events(self) -> Any:
        """EventBridge, for the generator function's events."""
        return self._lazy.get(
            "events", lambda: boto3.client("events", config=client_config(self.settings))
        )

    @property
    def dynamodb(self) -> Any:
        """The one DynamoDB client of the container, the models' own (see `bind_models`)."""
        return dynamodb_client()

    @property
    def ssm(self) -> Any:
        """The signing key's reader, with more patience for throttling than the others."""
        retries = Config(retries={"mode": "standard", "total_max_attempts": SSM_ATTEMPTS})
        return self._lazy.get(
            "ssm", lambda: boto3.client("ssm", config=client_config(self.settings).merge(retries))
        )

    @property
    def signer(self) -> UrlSigner | None:
        """Only with a bucket to sign for (the feeds function)."""
        bucket = self.settings.bucket_name
        if bucket is None:
            return None
        return self._lazy.get(
            "signer", lambda: build_signer(self.settings, self.s3, bucket, lambda: self.ssm)
        )


def client_config(settings: Settings, **extra: Any) -> Config:
    # Fail fast enough for an API behind a 30 s gateway timeout.
    return Config(
        connect_timeout=settings.aws_timeout_seconds,
        read_timeout=settings.aws_timeout_seconds,
        # `total_max_attempts` counts the first try, as PynamoDB's setting does; botocore's
        # `max_attempts` would not.
        retries={"mode": "standard", "total_max_attempts": settings.aws_max_attempts},
        max_pool_connections=POOL_WORKERS * 2,
        **extra,
    )


def build_runtime(settings: Settings) -> Runtime:
    """Bind the models to the table; clients come on first use."""
    bind_models(settings)
    return Runtime(
        settings=settings,
        pool=ThreadPoolExecutor(max_workers=POOL_WORKERS, thread_name_prefix="offload"),
    )


@functools.cache
def get_runtime() -> Runtime:
    """The container's runtime, built from the environment on first use."""
    return build_runtime(get_settings())
