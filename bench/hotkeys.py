"""Hot keys: the request rate one DynamoDB item holds, unsharded and sharded, simulated.

    .venv/bin/python bench/hotkeys.py [--seconds 10] [--seed 11]

Every feed request reads the `global`, `feed#…` and `client#…` invalidation items strongly
consistently and writes its client's rate counter. DynamoDB serves one item (one partition)
at most 3,000 read units and 1,000 write units a second, whatever the table's capacity mode.
This models each item as a bucket of that many units refilled every simulated second, feeds
it Poisson arrivals, and prints, side by side, the share of reads (or writes) refused at each
rate and the highest rate each design holds with less than 0.1 % refused. No AWS, no moto:
a discrete-time model, seeded, that runs in seconds.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from offload.config import default_of

READ_UNITS_PER_ITEM = 3000  # a second, strongly consistent reads of items up to 4 KB
WRITE_UNITS_PER_ITEM = 1000  # a second, writes of items up to 1 KB
TOLERATED = 0.001  # "holds": under 0.1 % of the item's calls refused
LOWEST, HIGHEST = 100, 100_000
GRID_STEP = 1.01  # rates tried: 1 % apart from LOWEST to HIGHEST
SHOWN = (500, 1_000, 2_000, 3_000, 5_000, 10_000, 20_000, 30_000, 50_000, 100_000)
COUNTER_SHARDS = 10  # what sharding the counter would buy (not built)
REQUEST_SECONDS = 0.02  # a warm hit's duration: containers = rate x this (Little's law)

# How many of `seconds` seconds' calls at `rate` a design refuses, and how many it got.
Outcome = tuple[int, int]
Simulate = Callable[[float, int, random.Random], Outcome]


def poisson(mean: float, rng: random.Random) -> int:
    """One Poisson draw, exactly: Knuth below 10, else Hörmann's PTRS (as numpy does)."""
    if mean < 10:
        limit, k, product = math.exp(-mean), 0, rng.random()
        while product > limit:
            k += 1
            product *= rng.random()
        return k
    slam, loglam = math.sqrt(mean), math.log(mean)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        k = math.floor((2 * a / us + b) * u + mean + 0.43)
        if us >= 0.07 and v <= vr:
            return k
        if k < 0 or (us < 0.013 and v > us):
            continue
        accept = -mean + k * loglam - math.lgamma(k + 1)
        if math.log(v) + math.log(invalpha) - math.log(a / (us * us) + b) <= accept:
            return k


def spread(items: int, capacity: int) -> Simulate:
    """Each call goes to one of `items` items at random, each with `capacity` a second.

    Splitting a Poisson stream at random gives each item a Poisson stream of rate/items.
    """

    def simulate(rate: float, seconds: int, rng: random.Random) -> Outcome:
        refused = offered = 0
        for _ in range(seconds):
            for _ in range(items):
                calls = poisson(rate / items, rng)
                offered += calls
                refused += max(0, calls - capacity)
        return refused, offered

    return simulate


def remembered_refusals(rate: float, seconds: int, rng: random.Random) -> Outcome:
    """A client past its limit; each container writes once, at its first refusal, then
    answers 429 from memory for the rest of the window (offload.ratelimit)."""
    containers = max(1, math.ceil(rate * REQUEST_SECONDS))
    unaware, refused, requests = containers, 0, 0
    for _ in range(seconds):
        writes = 0
        for _ in range(unaware):
            writes += poisson(rate / containers, rng) > 0
        unaware -= writes
        requests += poisson(rate, rng)
        refused += max(0, writes - WRITE_UNITS_PER_ITEM)
    return refused, requests


@dataclass(frozen=True)
class Design:
    name: str
    simulate: Simulate


def refused_share(design: Design, rate: float, seconds: int, seed: int) -> float:
    # One seed per rate: each design meets the same arrivals at the same rate.
    refused, offered = design.simulate(rate, seconds, random.Random(f"{seed}-{rate}"))
    return refused / offered if offered else 0.0


def holds(design: Design, seconds: int, seed: int) -> float:
    """The highest rate on the grid below which no rate refuses 0.1 % or more."""
    held, rate = 0.0, float(LOWEST)
    while held < HIGHEST:
        if refused_share(design, rate, seconds, seed) >= TOLERATED:
            return held
        held, rate = rate, min(rate * GRID_STEP, HIGHEST)
    return held


def table(title: str, designs: list[Design], seconds: int, seed: int) -> None:
    width = max(18, *(len(design.name) + 2 for design in designs))
    print(f"\n{title}: share refused at each rate (Poisson arrivals, {seconds} s)")
    print(f"{'requests/s':>12}" + "".join(f"{d.name:>{width}}" for d in designs))
    for rate in SHOWN:
        cells = (f"{refused_share(d, rate, seconds, seed):.3%}" for d in designs)
        print(f"{rate:>12,}" + "".join(f"{cell:>{width}}" for cell in cells))
    held = (holds(d, seconds, seed) for d in designs)
    row = "".join(
        f"{h:>{width},.0f}" if h < HIGHEST else f"{'≥ ' + f'{h:,.0f}':>{width}}" for h in held
    )
    print(f"{'holds up to':>12}" + row)


def shards_for(rate: float, seconds: int, seed: int) -> int:
    """The fewest invalidation shards that hold `rate`."""
    for shards in range(1, 101):
        design = Design("", spread(shards, READ_UNITS_PER_ITEM))
        if refused_share(design, rate, seconds, seed) < TOLERATED:
            return shards
    raise ValueError(f"{rate} requests/s needs more than 100 shards")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="simulated seconds per rate")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    configured = default_of("invalidation_shards")
    print(
        "Assumptions: one item serves 3,000 read units and 1,000 write units a second (per\n"
        "partition, on-demand or provisioned; burst and adaptive capacity do not raise it),\n"
        "a bucket per item refilled every second, nothing carried over. A strongly\n"
        "consistent read of an item up to 4 KB is 1 unit, a missing item's too; a counter\n"
        "update is 1 write unit, a failed condition too. Every request reads `global` (the\n"
        "hottest scope: a feed's or a client's item sees at most the same traffic) and\n"
        "writes its client's counter. A sharded scope is read at one shard picked at random.\n"
        f"Rates tried 1 % apart from {LOWEST:,} to {HIGHEST:,} requests/s; 'holds' = under\n"
        f"{TOLERATED:.1%} refused at that rate and every lower one. Seed {args.seed}. SDK\n"
        "retries of refused calls (which add load) are not modelled."
    )
    table(
        "Invalidation scope reads (3,000 a second per item)",
        [
            Design("unsharded (before)", spread(1, READ_UNITS_PER_ITEM)),
            Design(f"{configured} shards (default)", spread(configured, READ_UNITS_PER_ITEM)),
            Design("40 shards", spread(40, READ_UNITS_PER_ITEM)),
        ],
        args.seconds,
        args.seed,
    )
    needed = shards_for(HIGHEST, args.seconds, args.seed)
    print(f"fewest shards for {HIGHEST:,} requests/s: {needed}")
    print(
        f"\nOne client's rate counter (1,000 writes a second per item; {REQUEST_SECONDS * 1000:.0f}"
        " ms a request, so rate x 0.02 containers)"
    )
    table(
        "Counter writes",
        [
            Design("one item, every request", spread(1, WRITE_UNITS_PER_ITEM)),
            Design(
                f"{COUNTER_SHARDS} shards (not built)", spread(COUNTER_SHARDS, WRITE_UNITS_PER_ITEM)
            ),
            Design("past limit, memo (built)", remembered_refusals),
        ],
        args.seconds,
        args.seed,
    )
    print(
        "'every request': a client within its limit (or any client before refusals were\n"
        "remembered); 'counter shards' is what sharding would buy (not built); 'past limit,\n"
        "memo': a client flooding past its limit, as built: one write per container a window."
    )


if __name__ == "__main__":
    main()
