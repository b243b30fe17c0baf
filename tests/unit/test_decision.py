"""The decision on a feed request, case by case: no AWS, just what the reads returned."""

from __future__ import annotations

import pytest

from offload.feeds import Feed
from offload.feeds.decision import Decision, Hit, Rebuild, decide
from offload.freshness import Coverage
from offload.table import CacheEntry

FEED = Feed(name="probe", formats={"json": "application/json"}, generate=bytes, max_age_seconds=60)
KEY = "files/probe/c/0123456789abcdef0123456789abcdef/0001800000000000000-aaaaaaaa.json"
GENERATED = 1_800_000_000.0
SIZE = 1234


def entry() -> CacheEntry:
    return CacheEntry(
        CacheEntry.key_for("c"),
        CacheEntry.SORT,
        object_key=KEY,
        generated_at=GENERATED,
        size=SIZE,
    )


@pytest.mark.parametrize(
    ("stored", "exists", "coverage", "age", "expected"),
    [
        pytest.param(None, False, Coverage(), 0, Rebuild(), id="nothing recorded"),
        pytest.param(entry(), True, Coverage(), 59, Hit(KEY, SIZE), id="young enough"),
        pytest.param(entry(), True, Coverage(), 60, Rebuild(KEY, KEY), id="as old as max age"),
        pytest.param(entry(), False, Coverage(), 1, Rebuild(None, KEY), id="object deleted"),
        pytest.param(
            entry(), True, Coverage(soft_at=GENERATED + 1), 5, Rebuild(KEY, KEY), id="soft after"
        ),
        pytest.param(
            entry(), True, Coverage(hard_at=GENERATED + 1), 5, Rebuild(None, KEY), id="hard after"
        ),
        pytest.param(
            entry(), True, Coverage(hard_at=GENERATED), 5, Rebuild(None, KEY), id="hard at start"
        ),
        pytest.param(
            entry(),
            True,
            Coverage(GENERATED - 1, GENERATED - 1),
            5,
            Hit(KEY, SIZE),
            id="both before",
        ),
        pytest.param(
            entry(), True, Coverage(hard_at=GENERATED + 1), 600, Rebuild(None, KEY), id="hard, old"
        ),
    ],
)
def test_decision(
    stored: CacheEntry | None, exists: bool, coverage: Coverage, age: float, expected: Decision
):
    assert (
        decide(stored, exists=exists, coverage=coverage, feed=FEED, now=GENERATED + age) == expected
    )
