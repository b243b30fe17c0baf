"""How much of a collection's read traffic the edge absorbs, side by side in one run.

    .venv/bin/python bench/edge.py [--users 200] [--readers 20] [--seconds 30] [--poll 5]
                                   [--warmup 10] [--history 10]

Starts the local stack with its edge (Varnish configured as the template's CloudFront
distribution; `varnishd` must be installed) and a bench-only route, then runs the same
workload twice through the edge while matches keep arriving (one a second, two players each):

- **pointer**: each reader polls `/users/{id}/matches/version` and, when the version moved,
  reads `index?version=` and the match entities it has not seen yet;
- **one big list**: each reader polls `GET /users/{id}/matches` (bench-only), every match
  body in one answer with `max-age=5`.

Origin requests and bytes are the edge's own counters (varnishstat: what it fetched from the
API, revalidations and background refreshes included); the hit ratio is the share of reads
the edge answered from its cache. Each phase starts with a warm-up (every reader's first,
cold read of its whole list) that is not counted: the figures are those of a warm edge.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from offload_local.edge import edge_stats, find
from offload_local.template import ROOT, load

ADMIN_KEY = "demo-admin-key"
BIG_LIST = {
    "Type": "AWS::Serverless::Function",
    "Properties": {
        "Description": "bench only: every match body of a user in one list",
        "CodeUri": "bench/biglist/",
        "Handler": "biglist.lambda_handler",
        "Events": {
            "GetMatches": {
                "Type": "HttpApi",
                "Properties": {"Method": "GET", "Path": "/users/{user_id}/matches"},
            }
        },
    },
}


@dataclass
class Tally:
    reads: int = 0
    errors: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, reads: int, error: Exception | None = None) -> None:
        with self.lock:
            self.reads += reads
            if error is not None:
                self.errors += 1
                self.reasons[f"{type(error).__name__}: {error}"[:120]] += 1


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closed it."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._connection = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, bytes]:
        for attempt in (1, 2):
            try:
                self._connection.request(method, path, body=body, headers=headers or {})
                response = self._connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                self._connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class PointerReader:
    """Polls the pointer; on a new version reads the snapshot and the matches it lacks."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.version: str | None = None
        self.seen: set[str] = set()

    def poll(self, connection: Connection) -> int:
        status, body = connection.request("GET", f"/users/{self.user}/matches/version")
        reads = 1
        if status != 200:
            raise RuntimeError(f"pointer: {status} {body[:60]!r}")
        version = json.loads(body)["version"]
        if version == self.version:
            return reads
        path = f"/users/{self.user}/matches/index?version={version}"
        status, body = connection.request("GET", path)
        reads += 1
        if status != 200:
            raise RuntimeError(f"index: {status}")
        for match_id in json.loads(body)["match_ids"]:
            if match_id not in self.seen:
                status, _ = connection.request("GET", f"/matches/{match_id}")
                reads += 1
                if status != 200:
                    raise RuntimeError(f"match: {status}")
                self.seen.add(match_id)
        self.version = version
        return reads


class BigListReader:
    """Polls the one big list."""

    def __init__(self, user: str) -> None:
        self.user = user

    def poll(self, connection: Connection) -> int:
        status, _ = connection.request("GET", f"/users/{self.user}/matches")
        if status != 200:
            raise RuntimeError(f"big list: {status}")
        return 1


def record(connection: Connection, players: list[str], number: int) -> None:
    document = {
        "id": f"m-bench-{number}",
        "players": players,
        "finished_at": "2026-11-24T20:00:00Z",
        "map": random.choice(["harbour", "desert", "canyon", "tundra"]),
        "score": f"{random.randint(0, 30)}-{random.randint(0, 30)}",
        "rounds": [{"round": r, "winner": random.choice(players)} for r in range(1, 25)],
    }
    status, body = connection.request(
        "POST",
        "/matches",
        body=json.dumps(document).encode(),
        headers={"X-Api-Key": ADMIN_KEY, "Content-Type": "application/json"},
    )
    if status not in (200, 201):
        raise RuntimeError(f"recording a match: {status} {body[:200]!r}")


def run_phase(
    edge_url: str,
    api_url: str,
    make_reader: Callable[[str], PointerReader | BigListReader],
    users: list[str],
    *,
    readers: int,
    seconds: float,
    poll: float,
    threads: int,
    first_match: int,
) -> tuple[Tally, int]:
    """Readers poll through the edge while a writer records a match a second at the origin."""
    tally = Tally()
    everyone = [make_reader(user) for user in users for _ in range(readers)]
    random.shuffle(everyone)
    deadline = time.monotonic() + seconds
    stop = threading.Event()

    def reading(share: list) -> None:
        connection = Connection(edge_url)
        # Readers start at random offsets within one poll interval.
        start = time.monotonic()
        due = [(start + random.uniform(0, poll), i) for i in range(len(share))]
        due.sort()
        while due and not stop.is_set():
            at, i = due.pop(0)
            if at > deadline or time.monotonic() > deadline:
                break
            time.sleep(max(0.0, at - time.monotonic()))
            try:
                tally.add(share[i].poll(connection))
            except (RuntimeError, OSError, http.client.HTTPException) as error:
                tally.add(0, error)
            # The next poll comes `poll` seconds after this one ended, as a client's timer
            # would: a slow answer delays the reader instead of bunching its next polls.
            due.append((time.monotonic() + poll, i))
            due.sort()

    recorded = first_match

    def writing() -> None:
        nonlocal recorded
        connection = Connection(api_url)
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            record(connection, random.sample(users, 2), recorded)
            recorded += 1
            next_at += 1.0
            time.sleep(max(0.0, next_at - time.monotonic()))

    workers = [
        threading.Thread(target=reading, args=(everyone[i::threads],)) for i in range(threads)
    ]
    writer = threading.Thread(target=writing)
    for thread in [*workers, writer]:
        thread.start()
    writer.join()
    for thread in workers:
        thread.join()
    stop.set()
    return tally, recorded


@dataclass(frozen=True)
class Figures:
    design: str
    reads: int
    errors: int
    reasons: Counter[str]
    origin_requests: int
    origin_bytes: int
    edge_hits: int

    @property
    def hit_ratio(self) -> float:
        return self.edge_hits / self.reads if self.reads else 0.0


def measure(
    name: str, edge_name: str, phase: Callable[[float], Tally], *, warmup: float, seconds: float
) -> Figures:
    """Run a phase for warmup + seconds; count only after the warm-up (a warm edge)."""
    outcome: list[Tally] = []
    running = threading.Thread(target=lambda: outcome.append(phase(warmup + seconds)))
    running.start()
    time.sleep(warmup)
    before = edge_stats(edge_name)
    time.sleep(seconds)
    after = edge_stats(edge_name)
    running.join()

    def delta(counter: str) -> int:
        return sum(
            after[key] - before.get(key, 0)
            for key in after
            if key == counter or (key.startswith("VBE.") and key.endswith("." + counter))
        )

    return Figures(
        design=name,
        reads=delta("MAIN.client_req"),
        errors=outcome[0].errors if outcome else -1,
        reasons=outcome[0].reasons if outcome else Counter(),
        origin_requests=delta("MAIN.backend_req"),
        origin_bytes=delta("beresp_hdrbytes") + delta("beresp_bodybytes"),
        edge_hits=delta("MAIN.cache_hit"),
    )


def bench_template(directory: Path) -> Path:
    """template.yaml plus the bench-only big-list function."""
    template = load()
    template["Resources"]["BigListFunction"] = BIG_LIST
    path = directory / "template.yaml"
    path.write_text(yaml.safe_dump(template, sort_keys=False))
    return path


def start_stack(directory: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    env_file, log = directory / "local.env", directory / "stack.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "offload_local",
                "--port", "0", "--edge-port", "0",
                "--env-file", str(env_file),
                "--template", str(bench_template(directory)),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "POWERTOOLS_LOG_LEVEL": "WARNING"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 120
    while not env_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            sys.exit(f"the local stack did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    exports = [shlex.split(line) for line in env_file.read_text().splitlines()]
    return process, dict(words[1].split("=", 1) for words in exports if words[:1] == ["export"])


def seed(api_url: str, users: list[str], per_user: int, *, threads: int = 4) -> int:
    """Give every user a history of `per_user` matches (two players each); the next number."""
    count = len(users) * per_user // 2
    pairs = [random.sample(users, 2) for _ in range(count)]

    def recording(share: range) -> None:
        connection = Connection(api_url)
        for number in share:
            record(connection, pairs[number], number)

    workers = [
        threading.Thread(target=recording, args=(range(i, count, threads),))
        for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--readers", type=int, default=20, help="readers per user")
    parser.add_argument("--seconds", type=float, default=30, help="measured part of each phase")
    parser.add_argument(
        "--warmup", type=float, default=30, help="unmeasured start of each phase (edge warms)"
    )
    parser.add_argument("--poll", type=float, default=5, help="seconds between a reader's polls")
    parser.add_argument("--history", type=int, default=10, help="matches per user to start with")
    parser.add_argument("--threads", type=int, default=200, help="client threads")
    args = parser.parse_args()
    if find("varnishd") is None:
        sys.exit("bench/edge.py needs varnishd: sudo apt-get install varnish")
    random.seed(1)
    users = [f"bench-{n}" for n in range(args.users)]
    with tempfile.TemporaryDirectory() as directory:
        process, environment = start_stack(Path(directory))
        try:
            edge, api = environment["OFFLOAD_EDGE_URL"], environment["OFFLOAD_API_URL"]
            edge_name = environment["OFFLOAD_EDGE_NAME"]
            started = time.monotonic()
            number = seed(api, users, args.history)
            print(
                f"seeded {number} matches for {args.users} users "
                f"in {time.monotonic() - started:.0f} s",
                file=sys.stderr,
            )
            figures = []
            for name, make_reader in (("pointer", PointerReader), ("one big list", BigListReader)):

                def phase(length: float, make_reader=make_reader) -> Tally:
                    nonlocal number
                    tally, number = run_phase(
                        edge,
                        api,
                        make_reader,
                        users,
                        readers=args.readers,
                        seconds=length,
                        poll=args.poll,
                        threads=args.threads,
                        first_match=number,
                    )
                    return tally

                figures.append(
                    measure(name, edge_name, phase, warmup=args.warmup, seconds=args.seconds)
                )
        finally:
            process.terminate()
            process.wait(timeout=60)
    print(
        f"\n{args.users} users x {args.readers} readers, a poll every {args.poll:g} s each, "
        f"a new match a second, through the edge: {args.seconds:g} s measured per design "
        f"after {args.warmup:g} s of warm-up\n"
    )
    print(
        f"{'design':<14}{'reads':>9}{'reads/s':>9}{'errors':>8}{'origin req':>12}"
        f"{'origin bytes':>15}{'edge hits':>11}"
    )
    for f in figures:
        print(
            f"{f.design:<14}{f.reads:>9,}{f.reads / args.seconds:>9,.0f}{f.errors:>8}"
            f"{f.origin_requests:>12,}{f.origin_bytes:>15,}{f.hit_ratio:>11.1%}"
        )
    for f in figures:
        for reason, count in f.reasons.most_common(3):
            print(f"{f.design} errors: {count} x {reason}")
    pointer, big = figures
    print(
        f"\nthe big list sends {big.origin_requests / max(pointer.origin_requests, 1):.1f}x the "
        f"origin requests and {big.origin_bytes / max(pointer.origin_bytes, 1):.1f}x the origin "
        f"bytes of the pointer design"
    )


if __name__ == "__main__":
    main()
