"""What a million requests cost in AWS, from measured calls and bytes and AWS's public prices.

    .venv/bin/python bench/cost.py [--latency-ms 5] [--repeat 20]

Runs `bench/calls.py`'s in-process measurements (AWS calls, DynamoDB request units, bytes and
the function's wall time per request kind; nothing here is a hard-coded call count), prices
them with the table below (us-east-1, on-demand, first tier, free tiers left out) and
compares, per million:

- 1 MB downloads: **proxying** (the function returns the bytes through API Gateway),
  **redirect** (Offload: a 307 to a signed S3 URL) and **redirect + CloudFront** (the 307
  names a signed CloudFront URL);
- collection reads (pointer, index of its version, one new match, as `bench/edge.py`'s
  readers do) at the **origin** and **through the edge** with the hit ratio that
  docs/measurements.md records.

Writes the table to stdout and `docs/cost-sources.md`, and the chart to `docs/assets/cost.png`.
"""

from __future__ import annotations

import gzip
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from calls import Measurement, Results, measured_from_arguments

from offload_local.metering import DOWNLOAD_BYTES, Trace

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs"
MEASUREMENTS = DOCS / "measurements.md"
TABLE_PATH = DOCS / "cost-sources.md"
CHART_PATH = DOCS / "assets" / "cost.png"

# ---------------------------------------------------------------------------------------
# Prices: us-east-1, on-demand, first pricing tier, no free tier; read on PRICES_READ.
# `seen` says where the figure itself was read: AWS's pricing pages render most of their
# figures client-side, so several were read from a page quoting them (named); one was in no
# stored page and is the value as known, marked not re-read.
# ---------------------------------------------------------------------------------------

PRICES_READ = "2026-12-01"
MILLION = 1_000_000
# AWS bills transfer per GB of 2^30 bytes.
GB = 2**30
# HTTP APIs meter a request per started 512 KB of payload.
API_METERING_BYTES = 512 * 1024
# Lambda bills duration per started millisecond; the duration price is arm64's.
BILLING_MS = 1
PRICED_ARCHITECTURE = "arm64"


@dataclass(frozen=True, slots=True)
class Price:
    """One published price: `amount` dollars per `per` units of `unit`."""

    name: str
    amount: float
    per: float
    unit: str
    source: str
    seen: str
    read: str = PRICES_READ

    @property
    def each(self) -> float:
        """Dollars per single unit."""
        return self.amount / self.per


AWS_PAGE = "the source itself"
NOT_REREAD = "not re-read"
PRICES = {
    price.name: price
    for price in (
        Price(
            "Lambda requests",
            0.20,
            MILLION,
            "requests",
            "https://aws.amazon.com/lambda/pricing/",
            "https://git.mcrn.ar/mariano/lambda_local_runner/src/branch/main/docs/lambdas-md/"
            "lambda-13-cost.md",
        ),
        Price(
            "Lambda duration, arm64",
            0.0000133334,
            1,
            "GB-second (first 7.5 billion a month)",
            "https://aws.amazon.com/lambda/pricing/",
            "https://cloudchipr.com/blog/aws-lambda-pricing",
        ),
        Price(
            "API Gateway HTTP API requests",
            1.00,
            MILLION,
            "requests of up to 512 KB (first 300 million a month)",
            "https://docs.aws.amazon.com/whitepapers/latest/"
            "best-practices-api-gateway-private-apis-integration/cost-optimization.html",
            AWS_PAGE,
        ),
        Price(
            "DynamoDB on-demand reads",
            0.125,
            MILLION,
            "read request units",
            "https://aws.amazon.com/dynamodb/pricing/on-demand/",
            "https://airbyte.com/data-engineering-resources/dynamodb-pricing",
        ),
        Price(
            "DynamoDB on-demand writes",
            0.625,
            MILLION,
            "write request units",
            "https://aws.amazon.com/dynamodb/pricing/on-demand/",
            "https://airbyte.com/data-engineering-resources/dynamodb-pricing",
        ),
        Price(
            "S3 GET and HEAD",
            0.0004,
            1000,
            "requests (S3 Standard)",
            "https://aws.amazon.com/s3/pricing/",
            "https://c3x.dev/blog/s3-request-fees-explained",
        ),
        Price(
            "S3 PUT, COPY, POST, LIST",
            0.005,
            1000,
            "requests (S3 Standard)",
            "https://aws.amazon.com/s3/pricing/",
            "https://c3x.dev/blog/s3-request-fees-explained",
        ),
        Price(
            "Data transfer out to the internet (S3, API Gateway)",
            0.09,
            1,
            "GB (first 10 TB a month)",
            "https://aws.amazon.com/s3/pricing/ and https://aws.amazon.com/api-gateway/pricing/",
            "https://www.usage.ai/blogs/s3-egress-cost/, https://www.egresscost.com/aws",
        ),
        Price(
            "CloudFront data transfer out, United States",
            0.085,
            1,
            "GB (first 10 TB a month)",
            "https://aws.amazon.com/cloudfront/pricing/",
            AWS_PAGE,
        ),
        Price(
            "CloudFront origin fetch from S3 or API Gateway",
            0.0,
            1,
            "GB",
            "https://aws.amazon.com/cloudfront/pricing/",
            AWS_PAGE,
        ),
        Price(
            "CloudFront HTTPS requests, United States",
            0.0100,
            10_000,
            "requests",
            "https://aws.amazon.com/cloudfront/pricing/",
            "in no stored page: the value as known",
            read=NOT_REREAD,
        ),
    )
}


def price(name: str) -> float:
    return PRICES[name].each


# ---------------------------------------------------------------------------------------
# Assumptions beyond the measurements
# ---------------------------------------------------------------------------------------

# A per-client file is `Cache-Control: private`: no other client could use an edge's copy,
# so every fetch of one goes to S3.
FILE_EDGE_HIT_RATIO = 0.0
# Stated assumptions, not measurements (a bench cannot see real clients):
# the share of downloads whose client accepts gzip (browsers, curl --compressed, requests,
# httpx and Node's fetch do; urllib, Java's HttpClient and plain curl do not) ...
GZIP_SHARE = 0.8
# ... and the share of a shared feed's fetches an edge location already holds: its one file
# (public, immutable) is fetched from S3 once per edge location and generation.
SHARED_FILE_EDGE_HIT_RATIO = 0.9
# One collection read, as edge.py's reader does it when the pointer moved.
COLLECTION_READ = ("version", "index", "match")
EDGE_ROW = "pointer / snapshot / entity"
_S3_GET_CLASS = frozenset({"GetObject", "HeadObject"})
_S3_PUT_CLASS = frozenset(
    {
        "PutObject",
        "CopyObject",
        "ListObjectsV2",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
    }
)

COMPONENTS = (
    "API Gateway",
    "Lambda",
    "DynamoDB",
    "S3 requests",
    "CloudFront requests",
    "data transfer",
)
Breakdown = dict[str, float]


def edge_hit_ratio(readme: str) -> float:
    """The share of collection reads the edge absorbed (docs/measurements.md, bench/edge.py)."""
    row = re.search(rf"^\| {re.escape(EDGE_ROW)} \|.*\*\*([0-9.]+) %\*\* \|$", readme, re.M)
    if row is None:
        raise LookupError(f"docs/measurements.md has no '{EDGE_ROW}' row with an edge hit ratio")
    return float(row[1]) / 100


# ---------------------------------------------------------------------------------------
# Pricing one request
# ---------------------------------------------------------------------------------------


def api_gateway(measurement: Measurement) -> float:
    """An HTTP API request, metered per started 512 KB of request and response together."""
    size = measurement.request_bytes + measurement.response_bytes
    return math.ceil(size / API_METERING_BYTES) * price("API Gateway HTTP API requests")


def invocation(measurement: Measurement, memory_mb: int) -> float:
    """One invocation for the measured wall time, rounded up to the millisecond."""
    billed_ms = math.ceil(measurement.seconds * 1000 / BILLING_MS) * BILLING_MS
    gb_seconds = memory_mb / 1024 * billed_ms / 1000
    return price("Lambda requests") + gb_seconds * price("Lambda duration, arm64")


def dynamodb(trace: Trace) -> float:
    return trace.read_units * price("DynamoDB on-demand reads") + trace.write_units * price(
        "DynamoDB on-demand writes"
    )


def s3_requests(trace: Trace, *, client_gets: float = 0.0) -> float:
    """The function's S3 calls (a presign is free), plus GETs made by someone else."""
    gets = sum(
        1 for call in trace.calls if call.service == "S3" and call.operation in _S3_GET_CLASS
    )
    puts = sum(
        1 for call in trace.calls if call.service == "S3" and call.operation in _S3_PUT_CLASS
    )
    return (gets + client_gets) * price("S3 GET and HEAD") + puts * price(
        "S3 PUT, COPY, POST, LIST"
    )


def transfer(size: float, per_gb: str) -> float:
    return size / GB * price(per_gb)


INTERNET = "Data transfer out to the internet (S3, API Gateway)"
EDGE_TRANSFER = "CloudFront data transfer out, United States"
EDGE_REQUEST = "CloudFront HTTPS requests, United States"


def origin_call(measurement: Measurement, memory_mb: int) -> Breakdown:
    """What the API itself costs for one request, its answer sent straight to the client."""
    return add(
        {
            "API Gateway": api_gateway(measurement),
            "Lambda": invocation(measurement, memory_mb),
            "DynamoDB": dynamodb(measurement.trace),
            "S3 requests": s3_requests(measurement.trace),
            "data transfer": transfer(measurement.response_bytes, INTERNET),
        }
    )


def add(*parts: Mapping[str, float], scale: float = 1.0) -> Breakdown:
    total: Breakdown = dict.fromkeys(COMPONENTS, 0.0)
    for part in parts:
        for name, dollars in part.items():
            total[name] += dollars * scale
    return total


def gzip_saving() -> float:
    """The share of bytes the stored gzip copy saves, measured on the demo catalog (JSON)."""
    from offload.feeds.catalog import product_records, render_json
    from offload.storage import GZIP_LEVEL

    plain = render_json(product_records(2000))
    return 1 - len(gzip.compress(plain, compresslevel=GZIP_LEVEL, mtime=0)) / len(plain)


def downloads(results: Results, saving: float) -> dict[str, Breakdown]:
    """Dollars per 1 MB download, per way of delivering it; `saving` is gzip's share."""
    memory = results.memory_mb
    proxy, hit = results.feeds["proxy"], results.feeds["hit"]
    file_bytes = hit.download_bytes
    # What a client downloads on average, when GZIP_SHARE of them take the gzip copy.
    mixed_bytes = file_bytes * (1 - GZIP_SHARE * saving)

    def from_s3(size: float) -> Breakdown:
        return add(
            origin_call(hit, memory),
            {
                "S3 requests": price("S3 GET and HEAD"),  # the client's GET of the signed URL
                "data transfer": transfer(size, INTERNET),
            },
        )

    def from_edge(size: float, edge_hit_ratio: float) -> Breakdown:
        return add(
            origin_call(hit, memory),
            {
                "CloudFront requests": price(EDGE_REQUEST),
                # The edge fetches what it does not hold from S3: a GET, its bytes free.
                "S3 requests": (1 - edge_hit_ratio) * price("S3 GET and HEAD"),
                "data transfer": transfer(size, EDGE_TRANSFER),
            },
        )

    return {
        "proxy": origin_call(proxy, memory),
        "redirect": from_s3(file_bytes),
        "redirect + CloudFront": from_edge(file_bytes, FILE_EDGE_HIT_RATIO),
        "redirect, gzip where accepted": from_s3(mixed_bytes),
        "redirect + CloudFront, gzip where accepted": from_edge(mixed_bytes, FILE_EDGE_HIT_RATIO),
        "shared feed + CloudFront, gzip where accepted": from_edge(
            mixed_bytes, SHARED_FILE_EDGE_HIT_RATIO
        ),
    }


def collection_reads(results: Results, hit_ratio: float) -> dict[str, Breakdown]:
    """Dollars per collection read (COLLECTION_READ's requests), at the origin or edge."""
    memory = results.memory_mb
    requests = [results.collections[kind] for kind in COLLECTION_READ]
    origin = add(*(origin_call(m, memory) for m in requests))
    # Through the edge: every request pays the edge; the misses also pay the origin, but
    # not its transfer (an origin fetch into CloudFront is free).
    edge_side = add(
        *(
            {
                "CloudFront requests": price(EDGE_REQUEST),
                "data transfer": transfer(m.response_bytes, EDGE_TRANSFER),
            }
            for m in requests
        )
    )
    misses = add(
        *(
            {k: v for k, v in origin_call(m, memory).items() if k != "data transfer"}
            for m in requests
        ),
        scale=1 - hit_ratio,
    )
    return {"origin": origin, "through the edge": add(edge_side, misses)}


# ---------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------


def per_million(breakdown: Mapping[str, float]) -> dict[str, float]:
    return {name: dollars * MILLION for name, dollars in breakdown.items()}


def cost_table(rows: Mapping[str, Breakdown]) -> str:
    header = ["$ per million", *COMPONENTS, "total"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for label, breakdown in rows.items():
        dollars = per_million(breakdown)
        cells = [f"{dollars[name]:,.3f}" for name in COMPONENTS]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | **{sum(dollars.values()):,.2f}** |")
    return "\n".join(lines)


def inputs_table(results: Results, kinds: Iterable[tuple[str, Measurement]]) -> str:
    header = "| request | AWS calls | rounds | RRU | WRU | request B | response B | file B | ms |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, m in kinds:
        lines.append(
            f"| {label} | {len(m.trace.calls)} | {m.trace.rounds} | {m.trace.read_units:g} | "
            f"{m.trace.write_units:g} | {m.request_bytes:,} | {m.response_bytes:,} | "
            f"{m.download_bytes:,} | {m.seconds * 1000:.1f} |"
        )
    return "\n".join(lines)


def prices_table() -> str:
    lines = [
        "| price | $ | per | source | read | figure seen at |",
        "|---|---:|---|---|---|---|",
    ]
    for p in PRICES.values():
        per = f"{p.per:,.0f} {p.unit}" if p.per != 1 else p.unit
        amount = f"{p.amount:.10f}".rstrip("0").rstrip(".")
        lines.append(f"| {p.name} | {amount} | {per} | {p.source} | {p.read} | {p.seen} |")
    return "\n".join(lines)


def markdown(results: Results, hit_ratio: float, saving: float) -> str:
    rows = {f"1 MB download: {k}": v for k, v in downloads(results, saving).items()} | {
        f"collection read: {k}": v for k, v in collection_reads(results, hit_ratio).items()
    }
    kinds = [
        ("feed hit (redirect)", results.feeds["hit"]),
        ("feed hit, proxied", results.feeds["proxy"]),
        *((f"collection {kind}", results.collections[kind]) for kind in COLLECTION_READ),
    ]
    return "\n\n".join(
        [
            "# What a million requests cost",
            f"Generated by `.venv/bin/python bench/cost.py`: us-east-1 on-demand prices read on "
            f"{PRICES_READ}, applied to one in-process run of `bench/calls.py` (moto, "
            f"{results.latency * 1000:g} ms simulated round trip per AWS call; function "
            f"{results.memory_mb} MB {results.architecture}, billed for the measured wall "
            "time). Free tiers are left out; every price is its first volume tier.",
            cost_table(rows),
            "## Measured per request",
            inputs_table(results, kinds),
            "## Prices",
            prices_table(),
            "## Assumptions",
            "\n".join(
                f"- {line}"
                for line in (
                    f"A download is the {DOWNLOAD_BYTES:,}-byte file the bench feed generates; "
                    "its request is a warm hit (client cached, object known).",
                    "Proxying = the hit's calls, then a GetObject of the file, returned through "
                    "API Gateway (metered per started 512 KB of request plus response) and "
                    "transferred out at the internet rate; Lambda runs for the measured hit "
                    "plus fetch.",
                    "Redirect = the hit, then the client's GET of the signed S3 URL: one S3 "
                    "GET and the file's transfer out of S3.",
                    "Redirect + CloudFront = the same API call, answered directly by API "
                    "Gateway, then one CloudFront HTTPS request and the file's transfer out of "
                    f"CloudFront. Edge hit ratio for files: {FILE_EDGE_HIT_RATIO:.0%} "
                    "(files are private per client), so each fetch also costs one S3 GET; "
                    "S3 to CloudFront transfer is free.",
                    f"Gzip where accepted: {GZIP_SHARE:.0%} of clients accept gzip (an "
                    "assumption) and get the stored gzip copy, which saves "
                    f"{saving:.1%} of the bytes (measured now on the demo catalog's JSON); "
                    "the others get the plain file.",
                    "Shared feed: one file for every client, uploaded `public, immutable`, so "
                    f"an edge location serves it from its cache; {SHARED_FILE_EDGE_HIT_RATIO:.0%} "
                    "of fetches are edge hits (an assumption: the edge fetches each "
                    "generation once per location), the rest one S3 GET each.",
                    "A collection read = " + " + ".join(COLLECTION_READ) + " (a reader whose "
                    "pointer moved by one match; the index of a 10-match user). At the origin "
                    "each is an API Gateway request, a Lambda invocation, its DynamoDB reads "
                    "and its answer's transfer out.",
                    f"Through the edge, each is a CloudFront request and CloudFront transfer; "
                    f"{1 - hit_ratio:.1%} of them miss and also cost the origin's request, "
                    "invocation and reads (origin fetch transfer is free). The "
                    f"{hit_ratio:.1%} hit ratio is docs/measurements.md's 'What the edge absorbs' "
                    "(bench/edge.py, pointer design).",
                    "Misses are not priced: a file is generated once per client, cache key "
                    "and max age (bench/calls.py's miss and recorder rows show their calls).",
                    "DynamoDB units are estimated from the calls' body sizes (4 KB per read "
                    "unit, 1 KB per write unit, strongly consistent reads as measured); "
                    "durations are in-process wall times with moto, not AWS's.",
                )
            ),
            "![cost](assets/cost.png)",
        ]
    )


def chart(results: Results, hit_ratio: float, saving: float, path: Path) -> None:
    """Stacked bars per scenario, downloads and collection reads side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        ("$ per million 1 MB downloads", downloads(results, saving)),
        ("$ per million collection reads", collection_reads(results, hit_ratio)),
    )
    palette = plt.get_cmap("tab10")
    colours = {component: palette(index) for index, component in enumerate(COMPONENTS)}
    figure, axes = plt.subplots(
        1, 2, figsize=(12, 4), layout="constrained", gridspec_kw={"width_ratios": [3, 2]}
    )
    for axis, (title, rows) in zip(axes, panels, strict=True):
        labels = list(rows)
        left = [0.0] * len(labels)
        for component in COMPONENTS:
            values = [per_million(rows[label])[component] for label in labels]
            axis.barh(labels, values, left=left, color=colours[component], label=component)
            left = [a + b for a, b in zip(left, values, strict=True)]
        for y, total in enumerate(left):
            axis.text(total, y, f"  ${total:,.2f}", va="center")
        axis.set_title(title)
        axis.invert_yaxis()
        axis.set_xlim(0, max(left) * 1.25)
        axis.spines[["top", "right"]].set_visible(False)
    handles, names = axes[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="outside lower center", ncol=len(COMPONENTS), frameon=False)
    figure.suptitle(f"Offload, us-east-1 on-demand prices of {PRICES_READ}")
    # No timestamp or version in the file: it only changes when the figures do.
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)


def main() -> None:
    hit_ratio = edge_hit_ratio(MEASUREMENTS.read_text())
    results = measured_from_arguments(__doc__)
    if results.architecture != PRICED_ARCHITECTURE:
        raise SystemExit(f"template.yaml runs {results.architecture}; add its Lambda price")
    saving = gzip_saving()
    text = markdown(results, hit_ratio, saving)
    print(text)
    TABLE_PATH.write_text(text + "\n")
    chart(results, hit_ratio, saving, CHART_PATH)
    print(
        f"\nwrote {TABLE_PATH.relative_to(HERE.parent)} and {CHART_PATH.relative_to(HERE.parent)}"
    )


if __name__ == "__main__":
    main()
