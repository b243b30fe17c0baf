"""Invalidation scopes kept in shard items: exact whichever shard a request reads."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http import HTTPStatus
from typing import Any

import boto3
import pytest

from offload import freshness
from offload.config import INVALIDATION_SHARDS, TABLE_NAME, ConfigurationError, Settings
from offload.feeds.outcome import Outcome
from offload.freshness import Coverage, State, judge, read_coverage
from offload.invalidation import FeedInvalidation, invalidate, reshard
from offload.invalidation_scopes import Scope
from offload.runtime import get_runtime
from offload.table import CacheEntry, Invalidation, dynamodb_client
from tests.support import TABLE_NAME as TABLE
from tests.support import cache_status, reset_container_state

SHARDS = Settings.from_mapping({TABLE_NAME: "any"}).invalidation_shards
PROBE = "/feeds/probe.json"
CATALOG = Scope.feed("catalog")


@pytest.fixture
def read_shard(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """`read_shard(k)`: every request from now on reads shard k of each scope."""

    def force(shard: int) -> None:
        monkeypatch.setattr(freshness, "pick_shard", lambda shards: shard)

    return force


@pytest.fixture
def shard_count(monkeypatch: pytest.MonkeyPatch, aws: None) -> Iterator[Callable[[int], None]]:
    """`shard_count(n)`: containers started from now on keep n items per scope."""

    def configure(shards: int) -> None:
        monkeypatch.setenv(INVALIDATION_SHARDS, str(shards))
        reset_container_state()
        get_runtime()  # binds the models, with the count, as a cold start does

    yield configure
    monkeypatch.delenv(INVALIDATION_SHARDS, raising=False)
    reset_container_state()
    get_runtime()  # the models bound with the default count again


def coverage_on(shard: int, feed: str = "catalog", owner: str = "acme") -> Coverage:
    """What a request reading `shard` of each scope finds."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(freshness, "pick_shard", lambda shards: shard)
        return read_coverage(feed, owner)


def stored(scope: Scope, shard: int) -> Invalidation | None:
    try:
        return Invalidation.get(
            Invalidation.key_for(scope.key, shard), Invalidation.SORT, consistent_read=True
        )
    except Invalidation.DoesNotExist:
        return None


def hard_times(scope: Scope, shards: int = SHARDS) -> list[float | None]:
    """Each shard's hard invalidation time, as stored."""
    items = [stored(scope, shard) for shard in range(shards)]
    return [None if item is None or item.hard_at is None else item.hard_at for item in items]


def recorded_at(response: dict) -> float:
    assert response["statusCode"] == HTTPStatus.ACCEPTED, response
    return datetime.fromisoformat(json.loads(response["body"])["at"]).timestamp()


def entry_generated_at(at: float) -> CacheEntry:
    return CacheEntry(
        CacheEntry.key_for("c"),
        CacheEntry.SORT,
        cache_id="c",
        object_key="files/probe/c/1.json",
        generation_id="1",
        generated_at=at,
        content_type="application/json",
        size=1,
    )


def put_unsharded(scope: Scope, **times: float) -> None:
    """An item as the code before sharding wrote it: one per scope, at the scope's key."""
    boto3.resource("dynamodb").Table(TABLE).put_item(
        Item={"pk": f"INVALIDATION#{scope.key}", "sk": "INVALIDATION", **times}
    )


# --- reading: one shard per scope, any shard exact -----------------------------------------


@pytest.mark.parametrize("shard", range(SHARDS))
def test_a_hard_invalidation_makes_a_request_regenerate_whichever_shard_it_reads(
    shard, read_shard, call_feed, make_key, probe, invalidate, deliver_s3_events
):
    # GIVEN a recorded file, fresh for requests that read this shard
    read_shard(shard)
    key, _ = make_key()
    call_feed(PROBE, key=key)
    deliver_s3_events()
    assert cache_status(call_feed(PROBE, key=key)["headers"]) == Outcome.HIT
    # WHEN a hard invalidation of its feed has been accepted
    assert invalidate({"feed": "probe"})["statusCode"] == HTTPStatus.ACCEPTED
    # THEN the request reading this shard does not get the old file: it regenerates
    response = call_feed(PROBE, key=key)
    assert cache_status(response["headers"]) == Outcome.STORED
    assert json.loads(response["body"])["generation"] == 2


@pytest.mark.parametrize("body", [{"scope": "global"}, {"feed": "catalog"}, {"client": "acme"}])
def test_an_accepted_invalidation_is_in_every_shard_of_its_scope(invalidate, body):
    # WHEN an invalidation is accepted
    at = recorded_at(invalidate(body))
    # THEN a request finds it whichever shard it reads (the answer names it to the µs)
    [found] = {coverage_on(shard).hard_at for shard in range(SHARDS)}
    assert found == pytest.approx(at, abs=1e-6)


def test_a_request_reads_one_item_per_scope_strongly_consistently(aws):
    # GIVEN a spy on the container's DynamoDB calls
    reads: list[dict[str, Any]] = []

    def spy(params: dict[str, Any], **_: Any) -> None:
        reads.append(params)

    dynamodb_client().meta.events.register("provide-client-params.dynamodb.BatchGetItem", spy)
    # WHEN a request reads its coverage
    coverage_on(3, feed="probe", owner="acme")
    # THEN one consistent batch of three items, one shard of each scope, as before sharding
    [params] = reads
    [wanted] = params["RequestItems"].values()
    assert wanted["ConsistentRead"] is True
    assert [Invalidation.scope_of(key["pk"]["S"]) for key in wanted["Keys"]] == [
        ("global", 3),
        ("feed#probe", 3),
        ("client#acme", 3),
    ]


# --- writing: later times kept, soft and hard apart ----------------------------------------


def test_a_later_invalidation_is_never_overwritten_by_an_earlier_one(aws):
    # GIVEN an invalidation recorded at t=200
    invalidate(FeedInvalidation(CATALOG), now=200.0)
    # WHEN one stamped earlier (another host's clock, a slow request) arrives after it
    invalidate(FeedInvalidation(CATALOG), now=100.0)
    # THEN every shard keeps the later time
    assert hard_times(CATALOG) == [200.0] * SHARDS


def test_a_shard_holding_a_later_time_keeps_it_while_the_others_are_written(aws):
    # GIVEN shards that disagree (as after a migration): one holds a later time
    Invalidation(Invalidation.key_for(CATALOG.key, 3), Invalidation.SORT, hard_at=300.0).save()
    # WHEN an invalidation at t=200 is recorded
    invalidate(FeedInvalidation(CATALOG), now=200.0)
    # THEN that shard keeps its later time, and every other one has the new time
    assert hard_times(CATALOG) == [300.0 if shard == 3 else 200.0 for shard in range(SHARDS)]


def test_concurrent_invalidations_leave_the_latest_in_every_shard(aws):
    # WHEN twenty invalidations with different times are recorded at once
    times = [1_000.0 + n for n in range(20)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda at: invalidate(FeedInvalidation(CATALOG), now=at), times))
    # THEN every shard holds the latest
    assert hard_times(CATALOG) == [max(times)] * SHARDS


def test_soft_and_hard_invalidations_mean_what_they_did_on_every_shard(invalidate):
    # GIVEN a file generated before a soft invalidation of its feed
    soft_at = recorded_at(invalidate({"feed": "catalog", "soft": True}))
    entry = entry_generated_at(soft_at - 1)

    def states() -> set[State]:
        return {
            judge(entry, exists=True, coverage=coverage_on(shard), max_age=3600, now=soft_at)
            for shard in range(SHARDS)
        }

    # THEN every shard makes it stale (usable while rebuilding), never unusable
    [found] = {coverage_on(shard).soft_at for shard in range(SHARDS)}
    assert found == pytest.approx(soft_at, abs=1e-6)
    assert {coverage_on(shard).hard_at for shard in range(SHARDS)} == {0.0}
    assert states() == {State.STALE}
    # WHEN a hard invalidation follows
    recorded_at(invalidate({"feed": "catalog"}))
    # THEN every shard makes it unusable, and the soft time is still recorded
    assert states() == {State.UNUSABLE}
    assert {coverage_on(shard).soft_at for shard in range(SHARDS)} == {found}


# --- migration: what was recorded before sharding ----------------------------------------


def test_an_invalidation_recorded_before_sharding_reaches_every_shard_once_resharded(aws):
    # GIVEN the catalog's invalidation as the code before sharding recorded it
    put_unsharded(CATALOG, hard_at=100, soft_at=150)
    # THEN shard 0 kept its key, so requests reading it still see it; the others do not yet
    assert coverage_on(0) == Coverage(hard_at=100.0, soft_at=150.0)
    assert coverage_on(1) == Coverage()
    # WHEN the operator reshards
    assert reshard() == 1
    # THEN every shard holds both times
    assert {coverage_on(shard) for shard in range(SHARDS)} == {Coverage(100.0, 150.0)}


def test_resharding_never_lowers_a_later_time_and_can_be_repeated(aws):
    # GIVEN an old unsharded time and a later invalidation recorded since
    put_unsharded(Scope.everything(), hard_at=100)
    invalidate(FeedInvalidation(Scope.everything()), now=50.0)  # earlier: kept out
    invalidate(FeedInvalidation(Scope.everything()), now=400.0)
    # WHEN resharding runs, twice
    reshard()
    reshard()
    # THEN the later time stands everywhere
    assert hard_times(Scope.everything()) == [400.0] * SHARDS


def test_raising_the_shard_count_then_resharding_covers_the_new_shards(shard_count):
    # GIVEN an invalidation recorded with 4 shards a scope
    shard_count(4)
    invalidate(FeedInvalidation(CATALOG), now=100.0)
    # WHEN the count is raised to 12, the new shards hold nothing until the operator reshards
    shard_count(12)
    assert hard_times(CATALOG, 12) == [100.0] * 4 + [None] * 8
    reshard()
    # THEN every shard holds it
    assert hard_times(CATALOG, 12) == [100.0] * 12


# --- keys and configuration ---------------------------------------------------------------


@pytest.mark.parametrize("scope", ["global", "feed#catalog", "feed#123", "client#acme-2"])
@pytest.mark.parametrize("shard", [0, 1, 9, 99])
def test_a_shard_key_names_its_scope_and_shard(scope, shard):
    assert Invalidation.scope_of(Invalidation.key_for(scope, shard)) == (scope, shard)


def test_shard_zero_keeps_the_key_a_scope_had_before_sharding():
    assert Invalidation.key_for("feed#catalog", 0) == "INVALIDATION#feed#catalog"


@pytest.mark.parametrize("shards", ["0", "101"])
def test_the_shard_count_fits_one_transaction(shards):
    with pytest.raises(ConfigurationError, match=INVALIDATION_SHARDS):
        Settings.from_mapping({TABLE_NAME: "any", INVALIDATION_SHARDS: shards})
