"""An origin fetch with its checks: time to fetch, check and decode a file from a loopback origin.

    .venv/bin/python bench/origin.py [--megabytes 5] [--repeat 10]

Serves a CSV of about `--megabytes` from the local stack's origin server on loopback, then
fetches it with Offload's origin client as a miss would (read to the end of the connection,
length checked, decoded once), identity and gzip-encoded. Prints medians and throughput; the
figure that matters is what the checks cost beside the transfer itself.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import time

from offload.config import Settings
from offload.feeds.origin import Origin, OriginClient
from offload.feeds.plugin import GenerationRequest
from offload_local.origin import Answer, OriginHandler, OriginServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    rows, size, number = [b"sku,name,price,currency,stock\n"], 0, 0
    while size < args.megabytes * 1024 * 1024:
        number += 1
        price = (number * 7919) % 99_800 / 100
        rows.append(
            f"SKU-{number:07d},Item {number * 31 % 9973},{price:.2f},EUR,{number % 500}\n".encode()
        )
        size += len(rows[-1])
    body = b"".join(rows)
    encoded = gzip.compress(body, compresslevel=6, mtime=0)

    class Handler(OriginHandler):
        def answer(self) -> Answer:
            if self.path.startswith("/gzip"):
                return Answer(body=encoded, headers={"Content-Encoding": "gzip"})
            return Answer(body=body)

    server = OriginServer(0, token=None, handler=Handler)
    server.start()
    client = OriginClient(Settings(table_name="bench", origin_base_url=server.url))
    job = GenerationRequest(feed="bench", format="csv", client_id="bench", params={})
    try:
        for coding in ("identity", "gzip"):
            origin = Origin(f"/{coding}.csv", max_bytes=len(body) + 1, timeout_seconds=60)
            samples = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                fetched = client.fetch(origin, job)
                samples.append(time.perf_counter() - started)
                assert getattr(fetched, "data", None) == body
            median = statistics.median(samples)
            sent = len(encoded) if coding == "gzip" else len(body)
            print(
                f"{coding:>8}: {len(body) / 1e6:.1f} MB file ({sent / 1e6:.2f} MB on the wire) "
                f"fetched and checked in {median * 1000:.0f} ms median of {args.repeat} "
                f"({len(body) / median / 1e6:.0f} MB/s)"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
