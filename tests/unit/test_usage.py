"""Usage per client and feed: counted on the rate counter's item, reported by `offload usage`."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest

from offload import cli, usage
from offload.table import RateCounter, dynamodb_client, item_key, table_name
from offload.usage import Field


def usage_rows(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict]:
    capsys.readouterr()  # the handlers' log lines
    assert cli.main(["usage", "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_usage_counts_each_outcome_on_the_rate_counter(
    call_feed, make_key, probe, deliver_s3_events, capsys
):
    # GIVEN a client whose first request generates the probe feed (inline, stored)
    key, client_id = make_key()
    first = call_feed("/feeds/probe.json", key=key)
    assert first["statusCode"] == HTTPStatus.OK
    deliver_s3_events()
    # WHEN it is then redirected twice, answered 304 once, and sends one more request
    hit = call_feed("/feeds/probe.json", key=key)
    assert hit["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
    call_feed("/feeds/probe.json", key=key)
    held = call_feed(
        "/feeds/probe.json", key=key, headers={"if-none-match": hit["headers"]["ETag"]}
    )
    assert held["statusCode"] == HTTPStatus.NOT_MODIFIED
    call_feed("/feeds/probe.json", key=key)

    # THEN the report has every request, and every outcome but the last one, which rides on
    # the client's next write
    [row] = usage_rows(capsys, "--client", client_id)
    size = len(first["body"].encode())
    assert row == {
        "client": client_id,
        "feed": "probe",
        "period": row["period"],
        "requests": 5,
        "hits": 2,
        "misses": 1,
        "not_modified": 1,
        "rate_limited": 0,
        "bytes": 3 * size,
    }
    assert all(isinstance(row[field.value], int) for field in Field)


def test_refused_requests_count_as_rate_limited(call_feed, make_key, probe, capsys):
    # GIVEN a client allowed two requests an hour
    key, client_id = make_key(hourly_limit=2)
    # WHEN it sends five, the last three refused (the third by DynamoDB, the rest by the
    # container without a write), then a malformed one
    statuses = [call_feed("/feeds/probe.json", key=key)["statusCode"] for _ in range(5)]
    assert statuses.count(HTTPStatus.TOO_MANY_REQUESTS) == 3

    # THEN what was refused waits in the container for the client's next counted write
    [row] = usage_rows(capsys, "--client", client_id)
    assert (row["requests"], row["rate_limited"]) == (2, 0)
    pending = usage.PENDING.take(client_id)
    assert pending[("probe", Field.REQUESTS)] == 3
    assert pending[("probe", Field.RATE_LIMITED)] == 3


def test_usage_is_kept_for_the_retention_not_just_the_window(call_feed, make_key, probe):
    # GIVEN the default retention of 90 days
    key, client_id = make_key()
    call_feed("/feeds/probe.json", key=key)
    [item] = [
        item
        for item in dynamodb_client().scan(TableName=table_name())["Items"]
        if item["pk"]["S"].startswith(f"RATE#{client_id}#")
    ]
    start = RateCounter.window_of(item["pk"]["S"])
    assert start is not None
    # THEN DynamoDB's TTL removes the counter 90 days after its window began
    assert int(item["expires_at"]["N"]) - start[1] == 90 * 86_400
    assert usage.attribute("probe", Field.REQUESTS) in item


def test_reports_filter_and_sum_by_period(aws, capsys):
    # GIVEN counters of two clients in two hours of one day
    day = 1_700_000_000 // 86_400 * 86_400
    for client_id, start, feed, requests in [
        ("acme", day, "catalog", 3),
        ("acme", day + 3600, "catalog", 4),
        ("acme", day + 3600, "other", 1),
        ("globex", day, "catalog", 9),
    ]:
        dynamodb_client().update_item(
            TableName=table_name(),
            Key=item_key(RateCounter.key_for(client_id, start), RateCounter.SORT),
            UpdateExpression="SET #r = :r, hits = :r",
            ExpressionAttributeNames={"#r": usage.attribute(feed, Field.REQUESTS)},
            ExpressionAttributeValues={":r": {"N": str(requests)}},
        )
    since = ["--since", "3650d"]
    # THEN by day, acme's catalog hours add up; a feed or client filter narrows the rows
    by_day = usage_rows(capsys, *since, "--client", "acme", "--feed", "catalog")
    assert [(r["period"], r["requests"]) for r in by_day] == [("2023-11-14", 7)]
    by_hour = usage_rows(capsys, *since, "--client", "acme", "--by", "hour")
    assert [(r["feed"], r["period"], r["requests"]) for r in by_hour] == [
        ("catalog", "2023-11-14T00:00Z", 3),
        ("catalog", "2023-11-14T01:00Z", 4),
        ("other", "2023-11-14T01:00Z", 1),
    ]
    assert {r["client"] for r in usage_rows(capsys, *since)} == {"acme", "globex"}
    # AND windows before --since are left out
    assert usage_rows(capsys, "--since", "1d") == []


def test_csv_and_table_name_every_count(aws, capsys):
    capsys.readouterr()
    assert cli.main(["usage", "--format", "csv"]) == 0
    assert capsys.readouterr().out.strip() == (
        "client,feed,period,requests,hits,misses,not_modified,rate_limited,bytes"
    )
    assert cli.main(["usage"]) == 0
    assert capsys.readouterr().out.split() == [
        "CLIENT", "FEED", "PERIOD", "REQUESTS", "HITS", "MISSES", "NOT_MODIFIED",
        "RATE_LIMITED", "BYTES",
    ]  # fmt: skip


def test_a_bad_duration_is_one_line_and_exit_2(aws, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["usage", "--since", "seven days"])
    assert exited.value.code == 2
    assert "is not a duration" in capsys.readouterr().err
