"""AWS calls, sequential rounds and bytes per request, counted through botocore's event hooks.

    .venv/bin/python bench/calls.py [--latency-ms 5] [--repeat 20]

Runs the template's functions in-process on moto (routes, events and answers as the local
stack makes them) and records every AWS call each request causes: service and operation,
attempts, body bytes sent and received, DynamoDB request units (estimated from the bodies),
presigned URLs, and start and end times. Calls that overlap in time form one *round*; the
*chain* is the longest run of calls each starting after the previous one ended (the round
trips a request waits for). A simulated round trip (`--latency-ms`) is added to every AWS
call, as `bench/feeds.py` does, so that parallel calls visibly overlap and wall times include
the network.

The one write of a hit is the rate counter's, which also counts the client's usage (the
request, and the outcomes of its earlier requests; offload.usage): usage costs no call.

Feed kinds, each a warm container (client cached, object remembered) unless said otherwise:
hit, 304 (If-None-Match with the current ETag), stale (the file is past its max age and
another request holds the rebuild lock), 429 (the client is over its limit), miss (a cache
key never generated; the answer is inline), proxy (a hit, then the function fetches the
file and returns it: what Offload avoids), and the recorder's invocation for the upload.
Collection kinds: the version pointer, its 304, the index of a version, one match.

The meter itself is `offload_local.metering`, which the tests use too; `bench/cost.py`
prices these measurements.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import redirect_stdout
from dataclasses import dataclass
from functools import partial
from typing import Any

# Offload's modules are imported where they are used: Powertools reads its settings from the
# environment when imported, and `measure` sets that environment first.
from offload_local.metering import (
    DEFAULT_LATENCY_SECONDS,
    LAMBDA_ARCHITECTURE,
    LAMBDA_MEMORY_MB,
    CollectionBench,
    Exchange,
    FeedBench,
    InProcessApi,
    Recorder,
    Trace,
    bench_feed,
)

DEFAULT_REPEAT = 20

# ---------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """Repeated requests of one kind: their typical AWS work and median wall time."""

    kind: str
    exchanges: tuple[Exchange, ...]

    @property
    def typical(self) -> Exchange:
        """A request with the most frequent shape of AWS work (a rare one, such as a
        client-cache refresh, is left out)."""
        shapes = Counter(exchange.trace.signature for exchange in self.exchanges)
        shape = shapes.most_common(1)[0][0]
        return next(e for e in self.exchanges if e.trace.signature == shape)

    @property
    def varies(self) -> bool:
        return len({exchange.trace.signature for exchange in self.exchanges}) > 1

    @property
    def trace(self) -> Trace:
        return self.typical.trace

    @property
    def seconds(self) -> float:
        """The median wall time of the function."""
        return statistics.median(exchange.seconds for exchange in self.exchanges)

    @property
    def request_bytes(self) -> int:
        return self.typical.request_bytes

    @property
    def response_bytes(self) -> int:
        return self.typical.response_bytes

    @property
    def download_bytes(self) -> int:
        return self.typical.download_bytes


def in_turns(kinds: Mapping[str, Callable[[], Exchange]], times: int) -> dict[str, Measurement]:
    """Each kind `times` times, taking turns, so that every kind meets the same machine load
    (the wall times are compared, and this machine is shared)."""
    runs: dict[str, list[Exchange]] = {kind: [] for kind in kinds}
    for _ in range(times):
        for kind, request in kinds.items():
            runs[kind].append(request())
    return {kind: Measurement(kind, tuple(exchanges)) for kind, exchanges in runs.items()}


FEED_KINDS: dict[str, Callable[[FeedBench], Exchange]] = {
    "hit": FeedBench.hit,
    "304": FeedBench.not_modified,
    "stale": FeedBench.stale,
    "429": FeedBench.limited,
    "miss": FeedBench.miss,
    "proxy": FeedBench.proxy,
}
COLLECTION_KINDS: dict[str, Callable[[CollectionBench], Exchange]] = {
    "version": CollectionBench.pointer,
    "version 304": CollectionBench.pointer_not_modified,
    "index": CollectionBench.index,
    "match": CollectionBench.match,
}
RECORDER_KIND = "recorder"


def measure_feeds(bench: FeedBench, times: int) -> dict[str, Measurement]:
    """Each feed kind `times` times, plus the recorder invocations the misses caused."""
    measured = in_turns({kind: partial(run, bench) for kind, run in FEED_KINDS.items()}, times)
    # The plain file's events; its gzip copy's are recorded with it and make no call.
    recorded = tuple(exchange for exchange in bench.recorded if exchange.trace.calls)
    measured[RECORDER_KIND] = Measurement(RECORDER_KIND, recorded)
    return measured


def measure_collections(bench: CollectionBench, times: int) -> dict[str, Measurement]:
    return in_turns({kind: partial(run, bench) for kind, run in COLLECTION_KINDS.items()}, times)


@dataclass(frozen=True)
class Results:
    """Everything one in-process run measured."""

    latency: float
    feeds: dict[str, Measurement]
    collections: dict[str, Measurement]
    memory_mb: int
    architecture: str


def bench_environment(stack: Any) -> dict[str, str]:
    """The settings every function in the template shares, as the local stack sets them,
    with fake credentials and quiet Powertools (no metrics printed per invocation)."""
    functions = stack.functions()
    shared = dict(functions[0].environment)
    for function in functions[1:]:
        shared = {k: v for k, v in shared.items() if function.environment.get(k) == v}
    return {
        **shared,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": stack.region,
        "AWS_REGION": stack.region,
        "POWERTOOLS_SERVICE_NAME": "offload-bench",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }


def function_sizing(stack: Any, logical_id: str = "FeedsFunction") -> tuple[int, str]:
    """(MemorySize in MB, architecture) of a function, its own or the template's Globals."""
    template = stack.template
    globals_ = template.get("Globals", {}).get("Function", {})
    properties = template["Resources"][logical_id]["Properties"]
    memory = int(properties.get("MemorySize", globals_.get("MemorySize", LAMBDA_MEMORY_MB)))
    default = [LAMBDA_ARCHITECTURE]
    architectures = properties.get("Architectures", globals_.get("Architectures", default))
    return memory, str(architectures[0])


def measure(*, latency: float = DEFAULT_LATENCY_SECONDS, times: int = DEFAULT_REPEAT) -> Results:
    """Set up moto in-process with the template's table and bucket, then measure."""
    from offload_local.resources import create_resources
    from offload_local.template import Stack, load

    stack = Stack(load())
    os.environ.update(bench_environment(stack))
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL") or n == "AWS_PROFILE"]:
        os.environ.pop(name)

    from moto import mock_aws

    from offload.runtime import get_runtime

    # Powertools prints each invocation's metrics (the cold start's even when disabled).
    with mock_aws(), redirect_stdout(io.StringIO()):
        create_resources(stack)
        recorder = Recorder(latency=latency)
        runtime = get_runtime()
        recorder.watch(runtime.s3, runtime.dynamodb)
        recorder.watch_new_boto3_clients()
        recorder.watch_pynamodb()
        api = InProcessApi(stack, recorder)
        with bench_feed() as feed:
            feeds = measure_feeds(FeedBench(api, feed=feed), times)
        collections = measure_collections(CollectionBench(api), times)
    memory, architecture = function_sizing(stack)
    return Results(latency, feeds, collections, memory, architecture)


# ---------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------

COLUMNS = (
    "kind",
    "answer",
    "calls",
    "rounds",
    "chain",
    "presigns",
    "RRU",
    "WRU",
    "AWS sent B",
    "AWS recv B",
    "response B",
    "download B",
    "ms",
)


def table_rows(measured: Mapping[str, Measurement]) -> list[list[str]]:
    rows = []
    for kind, measurement in measured.items():
        exchange, trace = measurement.typical, measurement.trace
        answer = (
            f"{exchange.status} {exchange.cache_status or ''}".strip() if exchange.status else "-"
        )
        rows.append(
            [
                kind + (" *" if measurement.varies else ""),
                answer,
                str(len(trace.calls)),
                str(trace.rounds),
                str(trace.chain),
                str(len(trace.presigns)),
                f"{trace.read_units:g}",
                f"{trace.write_units:g}",
                f"{trace.sent:,}",
                f"{trace.received:,}",
                f"{measurement.response_bytes:,}" if exchange.status else "-",
                f"{measurement.download_bytes:,}",
                f"{measurement.seconds * 1000:.1f}",
            ]
        )
    return rows


def markdown_table(measured: Mapping[str, Measurement]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(measured)]
    return "\n".join(lines)


def operations_text(measured: Mapping[str, Measurement]) -> str:
    """Each kind's calls, by service and operation, failed ones with their error."""
    lines = []
    for kind, measurement in measured.items():
        calls = Counter(
            call.name + (f" ({call.error})" if call.error else "")
            for call in measurement.trace.calls
        )
        listed = ", ".join(f"{n}x {name}" if n > 1 else name for name, n in calls.items())
        lines.append(f"- {kind}: {listed or 'no AWS call'}")
    return "\n".join(lines)


def report(results: Results) -> str:
    return "\n\n".join(
        [
            f"Simulated AWS round trip: {results.latency * 1000:g} ms per call; "
            f"function {results.memory_mb} MB {results.architecture}; medians of the wall time. "
            "`*`: repeats differed; the most frequent shape is shown.",
            "Feeds (a 1 MB file; warm container):",
            markdown_table(results.feeds),
            operations_text(results.feeds),
            "Collections (a user with 10 matches):",
            markdown_table(results.collections),
            operations_text(results.collections),
        ]
    )


def measured_from_arguments(description: str | None) -> Results:
    """The measurements, with the round trip and repeat count the command line names."""
    parser = argparse.ArgumentParser(description=(description or "").splitlines()[0])
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=DEFAULT_LATENCY_SECONDS * 1000,
        help="simulated round trip added to every AWS call",
    )
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="requests per kind")
    args = parser.parse_args()
    return measure(latency=args.latency_ms / 1000, times=args.repeat)


def main() -> None:
    print(report(measured_from_arguments(__doc__)))


if __name__ == "__main__":
    main()
