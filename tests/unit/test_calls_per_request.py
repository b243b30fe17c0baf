"""AWS calls and sequential rounds per request, counted through botocore's event hooks
(bench/calls.py), against what DESIGN.md promises: a warm hit is one parallel round."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from http import HTTPStatus

import pytest

from offload import usage_report
from offload.runtime import Runtime
from offload_local.metering import (
    CollectionBench,
    FeedBench,
    InProcessApi,
    Recorder,
    Trace,
    bench_feed,
    chain,
    rounds,
)
from tests.support import STACK

# Long enough that calls sent together overlap in time however loaded the machine is.
LATENCY_SECONDS = 0.05
FILE_BYTES = 64 * 1024
# The first round of every feed request: the rate counter, the cache entry, the
# invalidations covering it and (in a warm container) a speculative HEAD of the file.
FIRST_ROUND = Counter(
    {
        "DynamoDB.UpdateItem": 1,
        "DynamoDB.GetItem": 1,
        "DynamoDB.BatchGetItem": 1,
        "S3.HeadObject": 1,
    }
)


@pytest.fixture
def in_process(runtime: Runtime) -> InProcessApi:
    recorder = Recorder(latency=LATENCY_SECONDS)
    recorder.watch(runtime.s3, runtime.dynamodb)
    recorder.watch_pynamodb()
    return InProcessApi(STACK, recorder)


@pytest.fixture
def feeds(in_process: InProcessApi) -> Iterator[FeedBench]:
    with bench_feed(FILE_BYTES) as feed:
        yield FeedBench(in_process, feed=feed)


def writes(trace: Trace) -> list[str]:
    return [call.name for call in trace.calls if call.write_units]


def test_rounds_group_calls_that_overlap_in_time() -> None:
    # GIVEN two overlapping calls, then one after both, then two overlapping again
    intervals = [(0.0, 2.0), (1.0, 3.0), (3.5, 4.0), (5.0, 7.0), (6.0, 8.0)]

    # THEN each group is a round, and the chain waits for one call per round
    assert rounds(intervals) == 3
    assert chain(intervals) == 3
    assert rounds([]) == chain([]) == 0


def test_warm_hit_is_one_round_of_parallel_calls(feeds: FeedBench) -> None:
    # WHEN a warm container answers a hit
    hit = feeds.hit()

    # THEN every call is sent at once, in one round, and only the rate counter is written
    assert (hit.status, hit.cache_status) == (HTTPStatus.TEMPORARY_REDIRECT, "hit")
    assert hit.trace.rounds == hit.trace.chain == 1
    assert hit.trace.operations == FIRST_ROUND
    assert writes(hit.trace) == ["DynamoDB.UpdateItem"]
    assert hit.trace.presigns == ("S3.GetObject",)


def test_hit_moves_a_redirect_and_the_client_downloads_the_file(feeds: FeedBench) -> None:
    hit = feeds.hit()

    assert hit.response_bytes < 2_000
    assert hit.download_bytes == FILE_BYTES
    assert hit.trace.count("S3", "GetObject") == 0


def test_proxying_the_file_pulls_it_through_the_function(feeds: FeedBench) -> None:
    proxied = feeds.proxy()

    assert proxied.trace.count("S3", "GetObject") == 1
    assert proxied.trace.received >= FILE_BYTES
    assert proxied.response_bytes > FILE_BYTES


def test_not_modified_costs_a_hit_without_a_presign(feeds: FeedBench) -> None:
    # WHEN the client sends the current ETag
    answer = feeds.not_modified()

    # THEN the hit's one round is made, and no URL is signed
    assert answer.status == HTTPStatus.NOT_MODIFIED
    assert answer.trace.rounds == 1
    assert answer.trace.operations == FIRST_ROUND
    assert answer.trace.presigns == ()
    assert answer.download_bytes == 0


def test_a_client_known_to_be_over_its_limit_costs_no_aws_call(feeds: FeedBench) -> None:
    # GIVEN a client this container has seen spend its window; WHEN it asks again
    refused = feeds.limited()

    # THEN it is refused before the first round: no read, no HEAD, no write, no URL
    assert refused.status == HTTPStatus.TOO_MANY_REQUESTS
    assert refused.trace.calls == ()
    assert refused.trace.rounds == 0
    assert refused.trace.presigns == ()


def test_stale_redirects_after_one_lock_attempt_without_uploading(feeds: FeedBench) -> None:
    # GIVEN a file past its max age while another request holds the rebuild lock
    stale = feeds.stale()

    # THEN the first round, one failed lock write, and a redirect to the old file
    assert (stale.status, stale.cache_status) == (HTTPStatus.TEMPORARY_REDIRECT, "hit; fwd=stale")
    assert stale.trace.rounds == 2
    assert stale.trace.operations == FIRST_ROUND + Counter({"DynamoDB.PutItem": 1})
    [lock] = [call for call in stale.trace.calls if call.operation == "PutItem"]
    assert lock.error == "ConditionalCheckFailedException"
    assert stale.trace.count("S3", "PutObject") == 0
    assert stale.download_bytes == FILE_BYTES


def test_miss_takes_the_lock_then_generates_and_uploads_once(feeds: FeedBench) -> None:
    # WHEN nobody asked for this cache key before
    miss = feeds.miss()

    # THEN reads, the lock, the double-checked entry, then the gzip copy and the file
    assert (miss.status, miss.cache_status) == (HTTPStatus.OK, "fwd=miss; stored")
    assert miss.trace.rounds == miss.trace.chain == 5
    assert miss.trace.operations == Counter(
        {
            "DynamoDB.UpdateItem": 1,
            "DynamoDB.GetItem": 2,
            "DynamoDB.BatchGetItem": 1,
            "DynamoDB.PutItem": 1,
            "S3.PutObject": 2,
        }
    )
    assert miss.trace.presigns == ()  # the file is answered inline


def test_collection_reads_are_one_round_and_write_nothing(in_process: InProcessApi) -> None:
    # GIVEN a user with recorded matches, so the pointer exists
    collections = CollectionBench(in_process, history=3)

    for answer in (collections.pointer(), collections.index(), collections.match()):
        assert answer.trace.rounds == 1, answer.target
        assert writes(answer.trace) == [], answer.target


def test_usage_is_counted_by_the_hits_one_write(feeds: FeedBench) -> None:
    # GIVEN a warm container that has answered hits
    feeds.hit()
    # WHEN it answers one more
    hit = feeds.hit()

    # THEN the hit's round is unchanged (no call for usage), and its one write, the rate
    # counter's, holds the client's usage of the feed: the earlier hits and their bytes
    assert hit.trace.operations == FIRST_ROUND
    assert writes(hit.trace) == ["DynamoDB.UpdateItem"]
    [row] = usage_report.report(since=0, client=feeds.client_id, feed=feeds.feed.name)
    assert row.requests >= 2
    assert row.hits >= 1
    assert row.bytes == FILE_BYTES * (row.hits + row.misses)
