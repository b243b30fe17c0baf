"""The `offload` command against an emulated account."""

from __future__ import annotations

import json
import time

import pytest

from offload import api_keys, auth
from offload.cli import MAX_HOURLY_LIMIT, main
from offload.freshness import read_coverage
from offload_demo.cli import main as demo_main


def test_keys_create_prints_the_key_once_and_stores_its_hash(aws, capsys):
    assert main(["keys", "create", "--client", "acme", "--hourly-limit", "5"]) == 0
    out = capsys.readouterr().out
    key = next(line.split()[-1] for line in out.splitlines() if line.startswith("key:"))
    client = auth.authenticate(key, auth.SCOPE_FEEDS, auth.ClientCache(ttl=0))
    assert (client.client_id, client.hourly_limit) == ("acme", 5)

    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "acme" in listing and key not in listing


def test_keys_list_shows_hash_prefixes_as_its_help_says(aws, capsys):
    main(["keys", "create", "--client", "acme"])
    key = capsys.readouterr().out.split("key:")[1].split()[0]

    assert main(["keys", "list"]) == 0

    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("acme"))
    assert row.split()[1] == auth.hash_key(key)[:12] + "…"
    assert key[:8] not in row  # nothing of the key itself


@pytest.mark.parametrize("limit", ["0", "-5", "99999999999999999999999", "1.5", "1e3", "five", ""])
def test_keys_create_refuses_a_limit_that_is_not_a_bounded_whole_number(aws, capfd, limit):
    with pytest.raises(SystemExit) as exited:
        main(["keys", "create", "--client", "acme", "--hourly-limit", limit])
    assert exited.value.code == 2
    out, err = capfd.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "--hourly-limit" in err and "1 to 1,000,000,000" in err
    assert api_keys.list_keys() == []


@pytest.mark.parametrize("limit", [1, MAX_HOURLY_LIMIT])
def test_keys_create_stores_the_limit_it_was_given(aws, capsys, limit):
    assert main(["keys", "create", "--client", "acme", "--hourly-limit", str(limit)]) == 0
    assert f"hourly limit: {limit} (the client's" in capsys.readouterr().out
    (record,) = api_keys.list_keys()
    assert record.hourly_limit == limit and isinstance(record.hourly_limit, int)


@pytest.mark.parametrize(
    ("argument", "named"), [("--feed", '"feed"'), ("--collection", "collection")]
)
def test_an_empty_invalidation_target_names_its_own_argument(aws, capsys, argument, named):
    assert main(["invalidate", argument, ""]) == 2
    err = capsys.readouterr().err
    assert named in err and "client" not in err


def test_soft_is_refused_for_a_collection_as_the_api_refuses_it(aws, capsys):
    assert main(["invalidate", "--collection", "users/42/matches"]) == 0
    before = json.loads(capsys.readouterr().out)["version"]

    assert main(["invalidate", "--collection", "users/42/matches", "--soft"]) == 2

    assert "soft" in capsys.readouterr().err
    assert main(["invalidate", "--collection", "users/42/matches"]) == 0
    after = json.loads(capsys.readouterr().out)["version"]
    assert int(after) > int(before)  # the refused one moved nothing in between: one step
    assert main(["invalidate", "--feed", "catalog", "--soft"]) == 0


def test_log_lines_go_to_stderr_so_stdout_is_only_the_answer(aws, capfd):
    # GIVEN a command whose work logs a line (moving a collection's pointer)
    assert main(["invalidate", "--collection", "users/42/matches"]) == 0

    # THEN stdout is exactly its JSON answer (`offload ... | jq` works); the log is on stderr
    out, err = capfd.readouterr()
    assert json.loads(out)["version"]
    assert "collection version created" in err


def test_an_aws_error_is_one_line_without_a_traceback(aws, capfd):
    assert main(["--table", "nosuch", "keys", "list"]) == 1
    err = capfd.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert err.startswith("offload: AWS: ") and "nosuch" in err


@pytest.mark.parametrize("count", ["-1", "0", "ten"])
def test_demo_seed_refuses_a_count_that_is_not_positive(aws, capfd, count):
    with pytest.raises(SystemExit) as exited:
        demo_main(["seed", "--products", count])
    assert exited.value.code == 2
    assert capfd.readouterr().err.count("\n") == 1


def test_keys_revoke_by_client(aws, capsys):
    main(["keys", "create", "--client", "acme"])
    key = capsys.readouterr().out.split("key:")[1].split()[0]
    assert main(["keys", "revoke", "--client", "acme"]) == 0
    with pytest.raises(auth.Forbidden):
        auth.authenticate(key, auth.SCOPE_FEEDS, auth.ClientCache(ttl=0))
    assert main(["keys", "revoke", "--client", "nobody"]) == 2


def test_invalidate_feed_records_the_time(aws, capsys):
    before = time.time()
    assert main(["invalidate", "--feed", "catalog"]) == 0
    between = time.time()
    assert main(["invalidate", "--client", "acme", "--soft"]) == 0
    after = time.time()
    assert before <= read_coverage("catalog", "anyone").hard_at <= between
    assert between <= read_coverage("catalog", "acme").soft_at <= after
    assert '"invalidated"' in capsys.readouterr().out


def test_invalidating_an_unknown_feed_fails_with_a_usage_error(aws, capsys):
    assert main(["invalidate", "--feed", "nosuch"]) == 2
    assert "no feed 'nosuch'" in capsys.readouterr().err


def test_invalidate_collection_moves_its_pointer(aws, capsys):
    assert main(["invalidate", "--collection", "users/42/matches"]) == 0
    first = json.loads(capsys.readouterr().out)["version"]
    assert main(["invalidate", "--collection", "users/42/matches"]) == 0
    assert int(json.loads(capsys.readouterr().out)["version"]) > int(first)
    assert main(["invalidate", "--collection", "users/../matches"]) == 2


def test_feeds_list_needs_no_table(monkeypatch, capsys):
    monkeypatch.delenv("TABLE_NAME")
    assert main(["feeds", "list"]) == 0
    assert "catalog: formats json, xml; parameters category" in capsys.readouterr().out


def test_a_missing_table_is_a_clear_usage_error(monkeypatch, capsys):
    monkeypatch.delenv("TABLE_NAME")
    assert main(["keys", "list"]) == 2
    assert "source .offload/local.env" in capsys.readouterr().err


def test_bad_client_name_is_refused(aws, capsys):
    assert main(["keys", "create", "--client", "Not A Slug"]) == 2


def created_key(out: str) -> str:
    return next(line.split()[-1] for line in out.splitlines() if line.startswith("key:"))


def test_a_second_key_with_another_limit_changes_the_clients_limit_and_says_so(aws, capsys):
    # GIVEN a client with a key allowed 5 requests an hour
    assert main(["keys", "create", "--client", "acme", "--hourly-limit", "5"]) == 0
    first = created_key(capsys.readouterr().out)
    # WHEN a second key is created for it with another limit
    assert main(["keys", "create", "--client", "acme", "--hourly-limit", "3"]) == 0
    printed = capsys.readouterr()
    second = created_key(printed.out)
    # THEN the limit is the client's: changed for both keys, and the command says so
    assert "hourly limit: 3 (the client's, shared by all of its keys)" in printed.out
    assert "acme's hourly limit changed from 5 to 3, for every key of the client" in printed.err
    for key in (first, second):
        client = auth.authenticate(key, auth.SCOPE_FEEDS, auth.ClientCache(ttl=0))
        assert client.hourly_limit == 3
    # AND a third key named without a limit keeps the client's
    assert main(["keys", "create", "--client", "acme"]) == 0
    printed = capsys.readouterr()
    assert "hourly limit: 3 " in printed.out and "changed" not in printed.err
    # AND `keys list` shows the one limit on every key's line
    assert main(["keys", "list"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [(line[0], line[3]) for line in lines] == [("acme", "3")] * 3
