"""Feed hit path and byte path, side by side in one process run.

    .venv/bin/python bench/feeds.py [--rtt-ms 5] [--requests 200]

Runs against moto in-process with a simulated round-trip time added to every AWS call (moto
itself answers in well under a millisecond, which would hide the number of round trips).
Prints medians and ratios:

- a warm hit (the speculative HEAD runs in the same round as the DynamoDB reads) against a
  cold-container hit (the object is HEADed after the entry names it);
- bytes that pass through Lambda per request when redirecting versus proxying the file;
- catalog generation time and size per format.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import time
from collections.abc import Callable

import botocore.handlers

ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "TABLE_NAME": "offload-bench",
    "BUCKET_NAME": "offload-bench-feeds",
    "GENERATOR_FUNCTION_NAME": "offload-bench-feed-generator",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    # The demo's catalog is what this measures.
    "OFFLOAD_APP": "offload_demo",
}


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    from offload.observability import metrics

    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
        # A handler flushes per invocation; without it Powertools prints every 100 values.
        metrics.clear_metrics()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt-ms", type=float, default=5.0, help="simulated AWS round trip")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    os.environ.update(ENVIRONMENT)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        os.environ.pop(name, None)

    rtt = args.rtt_ms / 1000

    def network(**_: object) -> None:
        time.sleep(rtt)

    # Registered before any client exists, so every client (boto3's and PynamoDB's) pays it.
    botocore.handlers.BUILTIN_HANDLERS.append(("before-send", network))

    import boto3
    from moto import mock_aws

    from offload import api_keys, auth
    from offload.feeds import REGISTRY
    from offload.feeds.outcome import Outcome
    from offload.feeds.plugin import Feed, GenerationRequest
    from offload.feeds.service import FeedAnswer, FeedService
    from offload.files import Generation
    from offload.observability import metrics
    from offload.plugins import load_plugins
    from offload.recorder import record_created
    from offload.runtime import get_runtime
    from offload.storage import GZIP_LEVEL
    from offload_demo.catalog import product_records, seed_products
    from offload_local.resources import create_resources
    from offload_local.template import Stack, load

    with mock_aws():
        stack = Stack(load())
        names = {"Table": ENVIRONMENT["TABLE_NAME"], "FeedsBucket": ENVIRONMENT["BUCKET_NAME"]}
        create_resources(stack, names=names)
        runtime = get_runtime()
        load_plugins(runtime.settings.app_modules)
        seed_products(product_records(2000))
        api_keys.create_key("bench", scopes={auth.SCOPE_FEEDS}, hourly_limit=10**9, key="bench-key")
        client = auth.Client("bench", frozenset({auth.SCOPE_FEEDS}), 10**9)

        print(f"simulated AWS round trip: {args.rtt_ms:.1f} ms; {args.requests} requests each\n")
        print("catalog generation (median of 5):")
        catalog = REGISTRY.get("catalog")
        assert catalog is not None
        sizes = {}
        files: dict[str, bytes] = {}
        for fmt in ("json", "xml"):
            job = GenerationRequest("catalog", fmt, "bench", {})
            samples = timed(lambda job=job: catalog.generate(job), 5)
            data = catalog.generate(job)
            sizes[fmt] = len(data)
            print(f"  {fmt:<5} {sizes[fmt] / 1e6:5.2f} MB  {median_ms(samples):8.1f} ms")
            files[fmt] = data

        print("\nbytes a client that accepts gzip downloads (the stored gzip copy):")
        for fmt, data in files.items():
            encoded = gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
            compress = timed(lambda data=data: gzip.compress(data, GZIP_LEVEL, mtime=0), 5)
            print(
                f"  {fmt:<5} {len(data):>11,d} B -> {len(encoded):>9,d} B  "
                f"{1 - len(encoded) / len(data):6.1%} saved  "
                f"({median_ms(compress):5.1f} ms to compress)"
            )

        def serve(service: FeedService) -> FeedAnswer:
            # The rate status goes to the HTTP layer in a function; here nobody needs it.
            return service.handle("catalog.json", "", client, metered=lambda status: None)

        service = FeedService(runtime)
        first = serve(service)
        listed = boto3.client("s3").list_objects_v2(
            Bucket=ENVIRONMENT["BUCKET_NAME"], Prefix="files/"
        )["Contents"]
        [stored] = [item["Key"] for item in listed if Generation.of_object(item["Key"])]
        record_created(runtime.s3, ENVIRONMENT["BUCKET_NAME"], stored)

        warm = timed(lambda: serve(service), args.requests)
        cold = timed(lambda: serve(FeedService(runtime)), args.requests)
        assert serve(service).outcome == Outcome.HIT
        print("\nhit path (median):")
        print(f"  warm container, speculative HEAD   {median_ms(warm):7.2f} ms")
        print(f"  cold container, HEAD after entry   {median_ms(cold):7.2f} ms")
        print(f"  ratio cold / warm                  {median_ms(cold) / median_ms(warm):7.2f}x")

        hit = serve(service)
        redirect_bytes = len(json.dumps({"statusCode": 307, "headers": {"Location": hit.location}}))
        proxied = len(first.body or b"")
        print("\nbytes through Lambda per request (catalog.json):")
        print(f"  redirect (307 + signed URL)        {redirect_bytes:>9,d} B")
        print(f"  proxy (file in the response)       {proxied:>9,d} B")
        print(f"  ratio proxy / redirect             {proxied / redirect_bytes:>9,.0f}x")

        print("\ngenerations for 100 clients asking once each (uploads recorded as they land):")
        bucket = ENVIRONMENT["BUCKET_NAME"]
        for shared in (False, True):
            name = "bench-shared" if shared else "bench-own"
            calls: list[GenerationRequest] = []

            def generate(job: GenerationRequest, calls: list[GenerationRequest] = calls) -> bytes:
                calls.append(job)
                return b"{}"

            REGISTRY.register(Feed(name, {"json": "application/json"}, generate, shared=shared))
            service = FeedService(runtime)
            for number in range(100):
                asker = auth.Client(f"client-{number}", frozenset({auth.SCOPE_FEEDS}), 10**9)
                service.handle(f"{name}.json", "", asker, metered=lambda status: None)
                metrics.clear_metrics()  # as a handler's flush would
                uploads = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"files/{name}/")
                for item in uploads.get("Contents", []):
                    record_created(runtime.s3, bucket, item["Key"])
            kind = "shared feed" if shared else "per-client feed"
            print(f"  {kind:<16} {len(calls):>4} generations")


if __name__ == "__main__":
    main()
