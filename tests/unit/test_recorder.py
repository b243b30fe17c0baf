"""The upload recorder: idempotent, order-safe, and only ever moving forward."""

from __future__ import annotations

import boto3
import pytest

from offload import locks
from offload.feeds import Feed
from offload.feeds.cachekey import FeedRequest
from offload.files import Generation
from offload.recorder import record_created
from offload.storage import upload
from offload.table import CacheEntry
from tests.support import BUCKET_NAME, reset_container_state, s3_event

FEED = Feed(name="probe", formats={"json": "application/json"}, generate=bytes)


REQUEST = FeedRequest(feed=FEED, format="json", client_id="client-1", params=())


def generation_at(started_at: float) -> Generation:
    return Generation.start(REQUEST, started_at)


def put_generation(started_at: float) -> str:
    generation = generation_at(started_at)
    body = b'{"generation": "%s"}' % generation.id.encode()
    upload(boto3.client("s3"), BUCKET_NAME, generation, body, content_type="application/json")
    return generation.object_key


def current_entry() -> CacheEntry:
    return CacheEntry.get(CacheEntry.key_for(REQUEST.cache_id), CacheEntry.SORT)


def test_created_event_points_the_entry_at_the_object(handler):
    key = put_generation(1_800_000_000.0)
    result = handler("RecorderFunction")(s3_event("ObjectCreated:Put", key))
    assert result == {"recorded": ["advanced"]}
    entry = current_entry()
    assert entry.object_key == key
    assert entry.content_type == "application/json"
    assert entry.size > 0


def test_a_broken_plugin_does_not_stop_recording(handler, monkeypatch):
    # The recorder serves no plugin, so it loads none (the functions that do fail to start).
    key = put_generation(1_800_000_000.0)
    monkeypatch.setenv("OFFLOAD_APP", "no_such_plugin")
    reset_container_state()  # a new container reads the environment again
    result = handler("RecorderFunction")(s3_event("ObjectCreated:Put", key))
    assert result == {"recorded": ["advanced"]}


def test_duplicate_and_out_of_order_events_keep_the_newest(handler):
    older = put_generation(1_800_000_000.0)
    newer = put_generation(1_800_000_100.0)
    recorder = handler("RecorderFunction")
    recorder(s3_event("ObjectCreated:Put", newer))
    assert recorder(s3_event("ObjectCreated:Put", older)) == {"recorded": ["older"]}
    assert recorder(s3_event("ObjectCreated:Put", newer)) == {"recorded": ["older"]}
    assert current_entry().object_key == newer


def test_the_upload_releases_the_lock_it_names(runtime):
    started = 1_800_000_000.0
    generation = generation_at(started)
    lease = locks.Lease(generation, lease_until=started + 60)
    assert locks.acquire(runtime.dynamodb, lease, now=started, superseded_before=0).acquired
    upload(boto3.client("s3"), BUCKET_NAME, generation, b"{}", content_type="application/json")
    record_created(runtime.s3, BUCKET_NAME, generation.object_key)
    assert locks.current(REQUEST.cache_id) is None


def test_removed_event_drops_the_entry_that_points_at_the_object(handler):
    key = put_generation(1_800_000_000.0)
    recorder = handler("RecorderFunction")
    recorder(s3_event("ObjectCreated:Put", key))
    boto3.client("s3").delete_object(Bucket=BUCKET_NAME, Key=key)
    assert recorder(s3_event("ObjectRemoved:Delete", key)) == {"recorded": ["dropped"]}
    with pytest.raises(CacheEntry.DoesNotExist):
        current_entry()


def test_lifecycle_expiry_drops_the_entry_as_a_removal_does(handler):
    # GIVEN an entry whose object the lifecycle rule expires
    key = put_generation(1_800_000_000.0)
    recorder = handler("RecorderFunction")
    recorder(s3_event("ObjectCreated:Put", key))
    boto3.client("s3").delete_object(Bucket=BUCKET_NAME, Key=key)
    # WHEN S3 reports the expiry, under its own event name
    recorded = recorder(s3_event("LifecycleExpiration:Delete", key))
    # THEN the entry is gone, so the next request regenerates without a HEAD that says 404
    assert recorded == {"recorded": ["dropped"]}
    with pytest.raises(CacheEntry.DoesNotExist):
        current_entry()


def test_removal_of_an_old_generation_leaves_the_entry(handler):
    older = put_generation(1_800_000_000.0)
    newer = put_generation(1_800_000_100.0)
    recorder = handler("RecorderFunction")
    recorder(s3_event("ObjectCreated:Put", newer))
    assert recorder(s3_event("ObjectRemoved:Delete", older)) == {"recorded": ["unrelated"]}
    assert current_entry().object_key == newer


def test_created_event_for_an_object_already_deleted_is_a_no_op(handler):
    key = put_generation(1_800_000_000.0)
    boto3.client("s3").delete_object(Bucket=BUCKET_NAME, Key=key)
    assert handler("RecorderFunction")(s3_event("ObjectCreated:Put", key)) == {"recorded": ["gone"]}


def test_a_record_that_cannot_be_processed_fails_the_event(handler):
    key = put_generation(1_800_000_000.0)
    event = s3_event("ObjectCreated:Put", key, bucket="no-such-bucket")
    # Raising makes Lambda retry the event and then send it to the dead-letter queue.
    with pytest.raises(Exception, match="1 of 1 records failed"):
        handler("RecorderFunction")(event)


def test_a_gzip_copy_is_recorded_with_its_file_not_on_its_own(handler):
    key = put_generation(1_800_000_000.0)
    recorder = handler("RecorderFunction")
    assert Generation.of_gzip_copy(key + ".gz") == Generation.of_object(key)
    assert recorder(s3_event("ObjectCreated:Put", key + ".gz")) == {"recorded": ["copy"]}
    assert recorder(s3_event("ObjectCreated:Put", key)) == {"recorded": ["advanced"]}
    assert recorder(s3_event("ObjectRemoved:Delete", key + ".gz")) == {"recorded": ["copy"]}
    assert current_entry().object_key == key
