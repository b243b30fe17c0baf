"""The per-container runtime: settings, bound models and AWS clients, built once."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from offload.config import Settings, get_settings
from offload.models import bind_models
from offload.signing import UrlSigner, build_signer

# Enough for the hit path's parallel round (rate counter, entry, invalidations, HEAD)
# plus lock waiters polling in the same container.
POOL_WORKERS = 8


@dataclass(frozen=True, slots=True)
class Runtime:
    """What a function needs to serve: settings, AWS clients, a URL signer, a thread pool."""

    settings: Settings
    s3: Any
    dynamodb: Any
    pool: ThreadPoolExecutor
    # Only with a bucket to sign for (the feeds function).
    signer: UrlSigner | None


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
    """Bind the models to the table and create the clients for these settings."""
    bind_models(settings)
    s3 = boto3.client("s3", config=client_config(settings, signature_version="s3v4"))
    return Runtime(
        settings=settings,
        s3=s3,
        dynamodb=boto3.client("dynamodb", config=client_config(settings)),
        signer=build_signer(settings, s3, settings.bucket_name) if settings.bucket_name else None,
        pool=ThreadPoolExecutor(max_workers=POOL_WORKERS, thread_name_prefix="offload"),
    )


@functools.cache
def get_runtime() -> Runtime:
    """The container's runtime, built from the environment on first use."""
    return build_runtime(get_settings())
