"""Usage per client and feed, counted on the rate counter's item by the write it already gets.

A request's own write can count the request, but not its outcome: the write is sent with the
request's first reads, before anyone knows whether the answer is a hit, a miss or a 304. So
each outcome is tallied in the container and added to that client's next counted write in the
same container (`pending` hands the tally out, `restore` takes it back when that write is
refused). An outcome is therefore counted in the window of the client's next request, and a
container that is retired takes the outcomes of its last requests of each client with it;
the audit log has every issued link exactly. `offload.usage_report` reads the counts back.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from enum import StrEnum

# The rate counter item's usage attributes: `u:<feed>:<field>`.
PREFIX = "u:"
# Requests refused before their feed was known (a malformed path) are counted under this.
NO_FEED = "-"


class Field(StrEnum):
    """What is counted per client, feed and window."""

    REQUESTS = "requests"
    HITS = "hits"
    MISSES = "misses"
    NOT_MODIFIED = "not_modified"
    RATE_LIMITED = "rate_limited"
    BYTES = "bytes"


def attribute(feed: str, field: Field) -> str:
    """The counter item's attribute holding one count."""
    return f"{PREFIX}{feed}:{field.value}"


def parse_attribute(name: str) -> tuple[str, Field] | None:
    """The feed and field an attribute counts; None for the item's other attributes."""
    if not name.startswith(PREFIX):
        return None
    feed, _, field = name.removeprefix(PREFIX).rpartition(":")
    try:
        return feed, Field(field)
    except ValueError:
        return None


Tally = Counter[tuple[str, Field]]


class Pending:
    """Outcomes this container has seen and not yet written, per client."""

    def __init__(self) -> None:
        self._tallies: dict[str, Tally] = {}
        self._lock = threading.Lock()

    def add(self, client_id: str, feed: str, counts: Mapping[Field, int]) -> None:
        """Remember outcomes for the client's next counted write."""
        with self._lock:
            tally = self._tallies.setdefault(client_id, Counter())
            for field, value in counts.items():
                if value:
                    tally[(feed, field)] += value

    def take(self, client_id: str) -> Tally:
        """Hand out the client's tally for a write; `restore` it if the write fails."""
        with self._lock:
            return self._tallies.pop(client_id, Counter())

    def restore(self, client_id: str, tally: Tally) -> None:
        """Give back a tally whose write did not happen."""
        if not tally:
            return
        with self._lock:
            self._tallies.setdefault(client_id, Counter()).update(tally)

    def clear(self) -> None:
        with self._lock:
            self._tallies.clear()


PENDING = Pending()


def update_parts(tally: Tally) -> tuple[str, dict[str, str], dict[str, dict[str, str]]]:
    """`ADD` clauses, names and values that count `tally` in an UpdateItem."""
    clauses: list[str] = []
    names: dict[str, str] = {}
    values: dict[str, dict[str, str]] = {}
    for index, ((feed, field), count) in enumerate(sorted(tally.items())):
        names[f"#u{index}"] = attribute(feed, field)
        values[f":u{index}"] = {"N": str(count)}
        clauses.append(f"#u{index} :u{index}")
    return ", ".join(clauses), names, values
