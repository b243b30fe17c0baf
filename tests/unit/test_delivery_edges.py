"""Delivery's edge cases: names of inline answers, delivery options refused or declined,
conditional stale answers, 304s without a length, bytes never inlined, the key cache bound."""

from __future__ import annotations

import io
from http import HTTPStatus
from urllib.parse import urlsplit
from wsgiref.util import setup_testing_defaults

import pytest

from offload import api_keys, auth, locks
from offload.feeds.delivery import LINK_MEDIA_TYPE
from offload.feeds.outcome import Outcome
from offload.files import Generation
from offload_local.gateway import Gateway
from offload_local.lambdas import Containers
from offload_local.template import ROOT, Function, Route
from tests.support import cache_status, problem_of, signed_generation, stored_generations
from tests.support.clock import FakeClock
from tests.support.feeds import age_entries, download, probe_feed

PROBE = "/feeds/probe.json"


# --- inline answers are named as their redirects are -----------------------------------------


def test_an_inline_miss_says_the_name_a_hit_would_save_it_as(
    call_feed, make_key, probe, deliver_s3_events
):
    key, _ = make_key()
    # WHEN the first request generates the file and answers it inline
    miss = call_feed(PROBE, key=key)
    deliver_s3_events()
    hit = call_feed(PROBE, key=key)
    # THEN `curl -J -O` saves it under the same name as the later redirect's file
    assert cache_status(miss["headers"]) == Outcome.STORED
    generation = signed_generation(hit["headers"]["Location"])
    assert miss["headers"]["Content-Disposition"] == (
        f'attachment; filename="{generation.filename}"'
    )


# --- delivery options: what is refused, what is declined -------------------------------------


@pytest.mark.parametrize("query", ["redirect=", "redirect", "redirect=yes"])
def test_a_redirect_option_that_is_not_true_or_false_is_a_400(call_feed, make_key, probe, query):
    key, _ = make_key()
    response = call_feed(PROBE, key=key, query=query)
    assert response["statusCode"] == HTTPStatus.BAD_REQUEST
    assert problem_of(response)["detail"] == "redirect must be true or false"
    assert probe.calls == 0


@pytest.mark.parametrize(
    "accept",
    [f"{LINK_MEDIA_TYPE};q=0", f"{LINK_MEDIA_TYPE};q=0.0, */*", "*/*", "application/*"],
)
def test_a_link_declined_or_not_named_in_accept_is_a_redirect(call_feed, make_key, probe, accept):
    key, _ = make_key()
    response = call_feed(PROBE, key=key, headers={"accept": accept})
    # A cold key: inline, not a link document
    assert response["statusCode"] == HTTPStatus.OK
    assert response["headers"]["Content-Type"] == "application/json"


# --- a stale redirect is conditional too ----------------------------------------------------


def test_a_stale_redirect_naming_the_clients_etag_is_a_304(
    call_feed, make_key, probe, deliver_s3_events, runtime
):
    # GIVEN a recorded file past its max age, and another request rebuilding it
    key, _ = make_key()
    call_feed(PROBE, key=key)
    deliver_s3_events()
    [object_key] = stored_generations("probe")
    held = Generation.of_object(object_key)
    age_entries(by=7200)
    clock = FakeClock()
    rebuilding = Generation(f"{int(clock() * 1e6):016d}-00000000", held.cache_id, "files/x")
    lease = locks.Lease(rebuilding, lease_until=clock() + 600)
    assert locks.acquire(runtime.dynamodb, lease, now=clock(), superseded_before=0).acquired
    stale = call_feed(PROBE, key=key)
    assert cache_status(stale["headers"]) == Outcome.STALE
    # WHEN the client asks naming exactly the stale file's tag
    again = call_feed(PROBE, key=key, headers={"if-none-match": stale["headers"]["ETag"]})
    # THEN it already holds the answer: 304, no Location
    assert again["statusCode"] == HTTPStatus.NOT_MODIFIED
    assert cache_status(again["headers"]) == Outcome.STALE
    assert "Location" not in again["headers"]
    assert again["headers"]["ETag"] == held.etag


# --- a 304 through the gateway has no Content-Length ----------------------------------------

NOT_MODIFIED = Function(
    logical_id="NotModified",
    code_uri=ROOT,
    handler="unused.lambda_handler",
    environment={},
    routes=(Route("GET", "/held"),),
    timeout=3,
)


class Answers(Containers):
    """A function that answers 304 with the headers a conditional answer keeps."""

    def invoke(self, event: dict) -> dict:
        return {"statusCode": 304, "headers": {"ETag": '"1"', "Cache-Control": "no-store"}}


def test_a_304_through_the_gateway_carries_no_content_length():
    gateway = Gateway(
        [NOT_MODIFIED], {"NotModified": Answers(NOT_MODIFIED)}, account_id="123456789012"
    )
    environ: dict = {"PATH_INFO": "/held", "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    started: list = []
    body = b"".join(gateway(environ, lambda status, headers: started.append((status, headers))))
    [(status, headers)] = started
    assert status.startswith("304")
    names = {name.lower() for name, _ in headers}
    assert "content-length" not in names
    assert "etag" in names
    assert body == b""


# --- a file that is not text is never answered inline ---------------------------------------


def test_a_binary_file_is_stored_and_redirected_to_not_inlined_as_base64(
    call_feed, make_key, deliver_s3_events
):
    key, _ = make_key()
    with probe_feed("blob", formats={"bin": "application/octet-stream"}) as blob:
        # WHEN a cold key's file is not text
        response = call_feed("/feeds/blob.bin", key=key)
        # THEN it is stored, and the client is sent to it rather than sent it base64-encoded
        assert response["statusCode"] == HTTPStatus.TEMPORARY_REDIRECT
        assert cache_status(response["headers"]) == Outcome.STORED
        assert not response.get("isBase64Encoded")
        assert urlsplit(response["headers"]["Location"]).path.endswith(".bin")
        assert download(response["headers"]["Location"]) == b'{"feed": "blob", "generation": 1}'
        assert blob.calls == 1


# --- the key cache is bounded ---------------------------------------------------------------


def test_unknown_keys_are_remembered_within_a_bound_and_never_push_out_clients(
    aws, make_key, monkeypatch
):
    monkeypatch.setattr(auth, "MAX_UNKNOWN", 50)
    key, client_id = make_key()
    cache = auth.ClientCache(ttl=3600, clock=FakeClock())
    assert cache.get(auth.hash_key(key)).client_id == client_id
    # WHEN a flood of made-up keys arrives
    for number in range(500):
        assert cache.get(auth.hash_key(f"junk-{number}")) is None
    # THEN the cache holds at most the bound of them, and the real client is still cached
    assert len(cache) == 50 + 1
    loads: list[str] = []
    monkeypatch.setattr(auth, "_load", lambda key_hash: loads.append(key_hash))
    assert cache.get(auth.hash_key(key)).client_id == client_id
    # AND the most recent unknown keys are still answered without a read
    assert cache.get(auth.hash_key("junk-499")) is None
    assert loads == []


def test_a_revoked_key_is_refused_once_its_cache_time_has_passed(aws, make_key):
    key, client_id = make_key()
    clock = FakeClock()
    cache = auth.ClientCache(ttl=7, clock=clock)
    assert auth.authenticate(key, auth.SCOPE_FEEDS, cache).client_id == client_id
    # WHEN the key is revoked while a container has it cached
    assert api_keys.revoke(key=key) == 1
    # THEN it is still served within the cache time, and refused from its end on
    clock.advance(6.9)
    assert auth.authenticate(key, auth.SCOPE_FEEDS, cache).client_id == client_id
    clock.advance(0.1)
    with pytest.raises(auth.Forbidden):
        auth.authenticate(key, auth.SCOPE_FEEDS, cache)
