"""Key lifecycle: expiry, rotation with a grace period, and last use recorded for free."""

from __future__ import annotations

import time
from http import HTTPStatus

import pytest

from offload import api_keys, auth
from offload.cli import main
from offload.table import ApiClient
from tests.support import problem_of


def printed_key(out: str) -> str:
    return next(line.split()[-1] for line in out.splitlines() if line.startswith("key:"))


def record_of(key: str) -> ApiClient:
    return ApiClient.get(ApiClient.key_for(auth.hash_key(key)), ApiClient.SORT)


def test_an_expired_key_is_a_403_that_says_so(call_feed, probe):
    # GIVEN a key that expired a second ago
    key = api_keys.create_key(
        "acme", scopes={auth.SCOPE_FEEDS}, hourly_limit=10, valid_until=time.time() - 1
    )
    # WHEN it is used
    response = call_feed("/feeds/probe.json", key=key)
    # THEN the answer is a 403 problem naming the expiry, and nothing was generated
    assert response["statusCode"] == HTTPStatus.FORBIDDEN
    assert "expired at" in problem_of(response)["detail"]
    assert probe.calls == 0


def test_keys_create_expires_sets_the_expiry(aws, capsys):
    # WHEN a key is created to expire in 90 days
    before = time.time()
    assert main(["keys", "create", "--client", "acme", "--expires", "90d"]) == 0
    key = printed_key(capsys.readouterr().out)
    # THEN it works now and its record says when it stops
    assert auth.authenticate(key, auth.SCOPE_FEEDS, auth.ClientCache(ttl=0)).client_id == "acme"
    until = record_of(key).valid_until
    assert until is not None
    assert int(before) + 90 * 86_400 <= until <= time.time() + 90 * 86_400


def test_rotate_gives_a_key_of_the_same_scope_and_limit_and_expires_the_old(aws, capsys):
    # GIVEN a client with one key, limited to 7 requests an hour
    old = api_keys.create_key("acme", scopes={auth.SCOPE_FEEDS}, hourly_limit=7)
    # WHEN its key is rotated with a grace of two days
    assert main(["keys", "rotate", "--client", "acme", "--grace", "2d"]) == 0
    new = printed_key(capsys.readouterr().out)
    # THEN the new key has the old one's scope and limit and no expiry; the old one works
    # until the grace ends, then is refused as expired
    cache = auth.ClientCache(ttl=0)
    fresh = auth.authenticate(new, auth.SCOPE_FEEDS, cache)
    assert (fresh.client_id, fresh.hourly_limit, fresh.valid_until) == ("acme", 7, None)
    assert auth.authenticate(old, auth.SCOPE_FEEDS, cache).client_id == "acme"
    until = record_of(old).valid_until
    assert until is not None and abs(until - (time.time() + 2 * 86_400)) < 60
    record_of(old).update(actions=[ApiClient.valid_until.set(int(time.time()) - 1)])
    with pytest.raises(auth.Forbidden, match="expired"):
        auth.authenticate(old, auth.SCOPE_FEEDS, cache)
    # AND a client without an active key cannot be rotated
    assert main(["keys", "rotate", "--client", "nobody"]) == 2
    assert "no active key" in capsys.readouterr().err


def test_keys_list_shows_expiry_state_and_last_use(aws, capsys):
    # GIVEN a used key, and a key that expired unused
    used = api_keys.create_key("acme", scopes={auth.SCOPE_FEEDS}, hourly_limit=7)
    api_keys.create_key(
        "globex", scopes={auth.SCOPE_FEEDS}, hourly_limit=7, valid_until=time.time() - 60
    )
    auth.authenticate(used, auth.SCOPE_FEEDS, auth.ClientCache(ttl=0))
    # WHEN keys are listed
    assert main(["keys", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # THEN each row says its state, expiry and last use
    assert lines[0].split()[-3:] == ["EXPIRES", "LAST", "USE"]
    acme = next(line for line in lines if line.startswith("acme"))
    globex = next(line for line in lines if line.startswith("globex"))
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert " active " in acme and acme.split()[-2] == today
    assert " expired " in globex and globex.rstrip().endswith("-")


def test_last_use_is_written_at_most_once_a_minute_per_container(aws):
    # GIVEN a container whose key cache refreshes on every request (ttl 0)
    key = api_keys.create_key("acme", scopes={auth.SCOPE_FEEDS}, hourly_limit=7)
    now = [1_900_000_000.0]
    cache = auth.ClientCache(ttl=0, clock=lambda: now[0])
    # WHEN the key is used, again 30 s later, and again 61 s after the first use
    auth.authenticate(key, auth.SCOPE_FEEDS, cache)
    first = record_of(key).last_used_at
    now[0] += 30
    auth.authenticate(key, auth.SCOPE_FEEDS, cache)
    second = record_of(key).last_used_at
    now[0] += 31
    auth.authenticate(key, auth.SCOPE_FEEDS, cache)
    # THEN the first and the third recorded it; the second only read the record
    assert first == second == 1_900_000_000
    assert record_of(key).last_used_at == 1_900_000_061


def test_marking_an_unknown_key_creates_nothing(aws):
    cache = auth.ClientCache(ttl=0)
    with pytest.raises(auth.Forbidden, match="unknown"):
        auth.authenticate("ofl_nobody", auth.SCOPE_FEEDS, cache)
    with pytest.raises(ApiClient.DoesNotExist):
        record_of("ofl_nobody")


def test_the_last_use_memory_is_bounded(aws, monkeypatch):
    # GIVEN a container that remembers at most two keys' last writes
    monkeypatch.setattr(auth, "MAX_RECORDED", 2)
    cache = auth.ClientCache(ttl=0)
    # WHEN three unknown keys are sent
    for n in range(3):
        with pytest.raises(auth.Forbidden):
            auth.authenticate(f"ofl_junk{n}", auth.SCOPE_FEEDS, cache)
    # THEN it holds no more than two
    assert len(cache._recorded) <= 2
