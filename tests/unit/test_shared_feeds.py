"""Shared feeds: one generation serves every client; keys, limits and signing stay per client."""

from __future__ import annotations

from collections.abc import Iterator
from http import HTTPStatus

import boto3
import pytest

from offload.feeds.outcome import Outcome
from offload.feeds.plugin import SHARED_OWNER
from tests.support import BUCKET_NAME, cache_status, stored_generations
from tests.support.feeds import Probe, download, probe_feed

SHARED = "/feeds/everyone.json"


@pytest.fixture
def shared_probe() -> Iterator[Probe]:
    """A feed `everyone` whose file is the same for every client, backed by a Probe."""
    with probe_feed("everyone", shared=True) as spy:
        yield spy


def test_one_generation_serves_every_client(call_feed, make_key, shared_probe, deliver_s3_events):
    # GIVEN three clients of a shared feed
    keys = [make_key()[0] for _ in range(3)]
    # WHEN the first asks, and then the others
    first = call_feed(SHARED, key=keys[0])
    deliver_s3_events()
    others = [call_feed(SHARED, key=key) for key in keys[1:]]
    # THEN it was generated once, stored once under no client, and the others were sent to it
    assert cache_status(first["headers"]) == Outcome.STORED
    assert shared_probe.calls == 1
    [stored] = stored_generations("everyone")
    assert stored.split("/")[2] == SHARED_OWNER
    for answer in others:
        assert answer["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
        assert download(answer["headers"]["Location"]) == first["body"].encode()
    # AND each client's limit counted only its own request
    assert {answer["headers"]["RateLimit-Remaining"] for answer in [first, *others]} == {"999"}


def test_a_clients_invalidation_leaves_a_shared_file_a_feed_invalidation_does_not(
    call_feed, make_key, shared_probe, deliver_s3_events, invalidate
):
    key, client_id = make_key()
    call_feed(SHARED, key=key)
    deliver_s3_events()
    assert invalidate({"client": client_id})["statusCode"] == HTTPStatus.ACCEPTED
    assert cache_status(call_feed(SHARED, key=key)["headers"]) == Outcome.HIT
    assert invalidate({"feed": "everyone"})["statusCode"] == HTTPStatus.ACCEPTED
    assert cache_status(call_feed(SHARED, key=key)["headers"]) == Outcome.STORED
    assert shared_probe.calls == 2


def test_a_per_client_feed_still_generates_per_client(call_feed, make_key, probe):
    for key in (make_key()[0], make_key()[0]):
        assert cache_status(call_feed("/feeds/probe.json", key=key)["headers"]) == Outcome.STORED
    assert probe.calls == 2


def test_only_a_shared_file_and_its_copy_may_be_held_by_a_shared_cache(
    call_feed, make_key, shared_probe, probe
):
    # GIVEN one file of a shared feed and one of a per-client feed, each with its gzip copy
    key, _ = make_key()
    call_feed(SHARED, key=key)
    call_feed("/feeds/probe.json", key=key)
    s3 = boto3.client("s3")

    def cache_control(feed: str) -> set[str]:
        listed = s3.list_objects_v2(Bucket=BUCKET_NAME, Prefix=f"files/{feed}/")["Contents"]
        return {
            s3.head_object(Bucket=BUCKET_NAME, Key=item["Key"])["CacheControl"]
            for item in listed
        }

    # THEN the edge may hand the shared one to every client; the per-client one stays private
    assert cache_control("everyone") == {"public, max-age=31536000, immutable"}
    assert cache_control("probe") == {"private, max-age=31536000, immutable"}
