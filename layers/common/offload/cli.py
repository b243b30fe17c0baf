"""The `offload` command: keys, invalidations and feeds, against AWS or the local stack.

It reaches AWS through the standard environment (credentials, region, AWS_ENDPOINT_URL),
finds the table in TABLE_NAME or --table, and the feeds and collections in the plugin
modules OFFLOAD_APP or --app names, as the functions do.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from offload import api_keys, auth, usage, usage_report
from offload.collections.store import CollectionStore
from offload.config import (
    DEFAULT_HOURLY_LIMIT,
    OFFLOAD_APP,
    TABLE_NAME,
    ConfigurationError,
    Settings,
    app_modules,
    default_of,
)
from offload.download import Downloader, DownloadError
from offload.errors import InvalidRequest, NotFound
from offload.invalidation import apply, parse_invalidation
from offload.observability import logger
from offload.plugins import Plugins, load_plugins
from offload.table import ApiClient, bind_models

# A key's requests per hour: a whole number from 1 to this (a billion an hour is some 280,000
# a second, far past what one API Gateway stage accepts by default).
MAX_HOURLY_LIMIT = 1_000_000_000

# Where `offload download` finds the API and the key when not given them.
API_URL_VARIABLES = ("OFFLOAD_URL", "OFFLOAD_EDGE_URL", "OFFLOAD_API_URL")
API_KEY_VARIABLE = "OFFLOAD_API_KEY"


class UsageError(Exception):
    """A command that cannot run as given."""


_DURATION = re.compile(r"([0-9]+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def duration(text: str) -> int:
    """Seconds in `90d`, `12h`, `30m` or `45s` (argparse type)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90d, 12h or 30m")
    return int(match[1]) * _UNIT_SECONDS[match[2]]


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (and exit 2), not the usage block and the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`, written in digits."""

    def parse(text: str) -> int:
        digits = text.strip()
        if not digits.lstrip("-").isdigit() or not low <= int(digits) <= high:
            raise argparse.ArgumentTypeError(
                f"expected a whole number from {low:,} to {high:,}, got {text!r}"
            )
        return int(digits)

    parse.__name__ = "whole number"  # argparse names the type in its own messages
    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `offload` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    with _logs_on_stderr():
        try:
            settings = None if args.command in {"feeds", "download"} else _bind(args.table)
            return int(args.run(args, settings))
        except UsageError as exc:
            print(f"offload: {exc}", file=sys.stderr)
            return 2
        except DownloadError as exc:
            print(f"offload: {exc}", file=sys.stderr)
            return 1
        except (ClientError, BotoCoreError, PynamoDBException) as exc:
            # What AWS said, on one line: the traceback would only show this module.
            print(f"offload: AWS: {' '.join(str(exc).split())}", file=sys.stderr)
            return 1


@contextmanager
def _logs_on_stderr() -> Iterator[None]:
    """The layer's log lines (Powertools writes them to stdout) on stderr, so that what a
    command prints on stdout is only its answer (`offload ... | jq`)."""
    handler = logger.registered_handler
    if not isinstance(handler, logging.StreamHandler):
        yield
        return
    previous = handler.setStream(sys.stderr)
    try:
        yield
    finally:
        handler.setStream(previous)


def _bind(table: str | None) -> Settings:
    table = table or os.environ.get(TABLE_NAME)
    if not table:
        raise UsageError(
            f"no table: set {TABLE_NAME} (with the local stack: source .offload/local.env) "
            "or pass --table"
        )
    settings = Settings.from_mapping({**os.environ, TABLE_NAME: table})
    bind_models(settings)
    return settings


def _plugins(args: argparse.Namespace) -> Plugins:
    """The plugins the functions serve, named by --app or OFFLOAD_APP."""
    named = args.app if args.app is not None else os.environ.get(OFFLOAD_APP, "")
    try:
        return load_plugins(app_modules(named))
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from exc


def _keys_create(args: argparse.Namespace, settings: Settings | None) -> int:
    assert settings is not None  # bound for every command but `feeds`
    # The limit is the client's, shared by all of its keys: naming another one for a new
    # key changes it for the client (and says so); naming none keeps the client's.
    previous = api_keys.client_limit(args.client) if auth.CLIENT_ID.fullmatch(args.client) else None
    limit = args.hourly_limit or previous or settings.default_hourly_limit
    valid_until = time.time() + args.expires if args.expires else None
    try:
        key = api_keys.create_key(
            args.client, scopes={args.scope}, hourly_limit=limit, valid_until=valid_until
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print(f"client:       {args.client}")
    print(f"scope:        {args.scope}")
    print(f"hourly limit: {limit} (the client's, shared by all of its keys)")
    print(f"expires:      {_when(valid_until) if valid_until else 'never'}")
    print(f"key:          {key}")
    if previous is not None and previous != limit:
        print(
            f"{args.client}'s hourly limit changed from {previous} to {limit}, "
            "for every key of the client",
            file=sys.stderr,
        )
    print("The key is shown only now; Offload stores its SHA-256 hash.", file=sys.stderr)
    return 0


def _keys_rotate(args: argparse.Namespace, settings: Settings | None) -> int:
    valid_until = time.time() + args.expires if args.expires else None
    try:
        rotation = api_keys.rotate(args.client, grace_seconds=args.grace, valid_until=valid_until)
    except LookupError as exc:
        raise UsageError(str(exc.args[0])) from exc
    print(f"client:       {rotation.client_id}")
    print(f"expires:      {_when(valid_until) if valid_until else 'never'}")
    print(f"key:          {rotation.key}")
    print(
        f"The key is shown only now. The client's {rotation.old_keys} other key(s) stop "
        f"working at {_when(rotation.old_valid_until)}.",
        file=sys.stderr,
    )
    return 0


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%d %H:%M")


def _keys_list(args: argparse.Namespace, settings: Settings | None) -> int:
    now = time.time()
    # LIMIT/H is the client's, the same on each of its keys' lines.
    limits = api_keys.client_limits()
    print(
        f"{'CLIENT':<20} {'KEY SHA-256':<14} {'SCOPES':<14} {'LIMIT/H':>10}  {'STATE':<8} "
        f"{'CREATED':<16}  {'EXPIRES':<16}  LAST USE"
    )
    for record in api_keys.list_keys():
        key_hash = record.pk.removeprefix(ApiClient.key_for(""))
        if record.disabled:
            state = "revoked"
        elif record.valid_until is not None and record.valid_until <= now:
            state = "expired"
        else:
            state = "active"
        scopes = ",".join(sorted(record.scopes))
        limit = limits.get(record.client_id, int(record.hourly_limit))
        print(
            f"{record.client_id:<20} {key_hash[:12] + '…':<14} {scopes:<14} "
            f"{limit:>10}  {state:<8} {_when(record.created_at):<16}  "
            f"{_when(record.valid_until):<16}  {_when(record.last_used_at)}"
        )
    return 0


def _keys_revoke(args: argparse.Namespace, settings: Settings | None) -> int:
    count = api_keys.revoke(client_id=args.client, key=args.key)
    if count == 0:
        raise UsageError("no such key or client")
    print(f"revoked {count} key(s); warm containers stop accepting them within their cache time")
    return 0


def _invalidate(args: argparse.Namespace, settings: Settings | None) -> int:
    assert settings is not None
    if args.glob:
        body: dict[str, object] = {"scope": "global"}
    elif args.collection is not None:
        body = {"collection": args.collection}
    else:
        body = {"feed": args.feed} if args.feed is not None else {"client": args.client}
    if args.soft:
        body["soft"] = True  # refused with a collection, as the API refuses it
    _plugins(args)  # the feeds and collections an invalidation may name
    try:
        request = parse_invalidation(body)
    except (InvalidRequest, NotFound) as exc:
        raise UsageError(exc.detail) from exc
    answer = apply(request, now=time.time(), collections=CollectionStore.for_settings(settings))
    print(json.dumps(answer))
    return 0


def _feeds_list(args: argparse.Namespace, settings: Settings | None) -> int:
    for feed in _plugins(args).feeds:
        params = ", ".join(p.name for p in feed.parameters) or "-"
        print(
            f"{feed.name}: formats {', '.join(sorted(feed.formats))}; parameters {params}; "
            f"max age {feed.max_age_seconds} s. {feed.description}"
        )
    return 0


def _usage(args: argparse.Namespace, settings: Settings | None) -> int:
    rows = usage_report.report(
        since=time.time() - args.since,
        by=usage_report.By(args.by),
        client=args.client,
        feed=args.feed,
    )
    documents = [row.document() for row in rows]
    if args.format == "json":
        print(json.dumps(documents, indent=2))
        return 0
    columns = ["client", "feed", "period", *(field.value for field in usage.Field)]
    if args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(documents)
        return 0
    widths = {c: max([len(c), *(len(str(d[c])) for d in documents)]) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for document in documents:
        print("  ".join(str(document[c]).ljust(widths[c]) for c in columns).rstrip())
    return 0


def _download(args: argparse.Namespace, settings: Settings | None) -> int:
    base = args.url or next((os.environ[n] for n in API_URL_VARIABLES if os.environ.get(n)), "")
    if not base:
        raise UsageError(
            f"no API: pass --url or set {API_URL_VARIABLES[0]} "
            "(with the local stack: source .offload/local.env)"
        )
    key = args.key or os.environ.get(API_KEY_VARIABLE)
    if not key:
        raise UsageError(f"no API key: pass --key or set {API_KEY_VARIABLE}")
    if "/" in args.file or "." not in args.file:
        raise UsageError("name the file as FEED.FORMAT, e.g. catalog.json")
    query = f"?{args.query}" if args.query else ""
    downloader = Downloader(
        base, key, max_wait=args.max_wait, report=lambda line: print(line, file=sys.stderr)
    )
    destination = Path(args.output or args.file)
    saved = downloader.download(args.file + query, destination)
    print(f"{saved} ({saved.stat().st_size} bytes, SHA-256 verified)")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="offload", description=__doc__.splitlines()[0])
    parser.add_argument("--table", help=f"DynamoDB table (default: ${TABLE_NAME})")
    parser.add_argument("--app", help=f"plugin modules, comma-separated (default: ${OFFLOAD_APP})")
    commands = parser.add_subparsers(dest="command", required=True)

    keys = commands.add_parser("keys", help="create, list, rotate and revoke API keys")
    key_commands = keys.add_subparsers(dest="action", required=True)
    create = key_commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--client", required=True)
    create.add_argument(
        "--hourly-limit",
        type=whole_number(1, MAX_HOURLY_LIMIT),
        help=f"requests per hour for the client, 1 to {MAX_HOURLY_LIMIT:,}, shared by all of "
        f"its keys (default: the client's current limit; for a new client ${DEFAULT_HOURLY_LIMIT}, "
        f"else {default_of('default_hourly_limit')})",
    )
    create.add_argument("--scope", choices=sorted(auth.SCOPES), default=auth.SCOPE_FEEDS)
    create.add_argument("--expires", type=duration, help="e.g. 90d: the key stops working then")
    create.set_defaults(run=_keys_create)
    rotate = key_commands.add_parser(
        "rotate", help="a new key with the same scope and limit; the old ones expire later"
    )
    rotate.add_argument("--client", required=True)
    rotate.add_argument(
        "--grace", type=duration, default=duration("7d"), help="how long old keys still work"
    )
    rotate.add_argument("--expires", type=duration, help="e.g. 90d: the new key's own expiry")
    rotate.set_defaults(run=_keys_rotate)
    key_commands.add_parser(
        "list", help="list keys: client, the first 12 hex digits of the key's SHA-256, limits"
    ).set_defaults(run=_keys_list)
    revoke = key_commands.add_parser("revoke", help="revoke one key or every key of a client")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--client")
    which.add_argument("--key")
    revoke.set_defaults(run=_keys_revoke)

    inv = commands.add_parser("invalidate", help="make feed files regenerate, or bump a collection")
    scope = inv.add_mutually_exclusive_group(required=True)
    scope.add_argument("--global", dest="glob", action="store_true")
    scope.add_argument("--feed")
    scope.add_argument("--client")
    scope.add_argument("--collection", help="e.g. users/42/matches: move it to a new version")
    inv.add_argument("--soft", action="store_true", help="allow stale answers while rebuilding")
    inv.set_defaults(run=_invalidate)

    report = commands.add_parser("usage", help="requests, hits, misses and bytes per client")
    report.add_argument("--client")
    report.add_argument("--feed")
    report.add_argument(
        "--since", type=duration, default=duration("7d"), help="e.g. 30d, 12h (default: 7d)"
    )
    periods = [by.value for by in usage_report.By]
    report.add_argument("--by", choices=periods, default=usage_report.By.DAY.value)
    report.add_argument("--format", choices=["table", "csv", "json"], default="table")
    report.set_defaults(run=_usage)

    feeds = commands.add_parser("feeds", help="list the registered feeds")
    feeds.add_subparsers(dest="action", required=True).add_parser("list").set_defaults(
        run=_feeds_list
    )

    download = commands.add_parser(
        "download", help="download a feed file, resuming after a cut, and verify its digest"
    )
    download.add_argument("file", metavar="FEED.FORMAT", help="e.g. catalog.json")
    download.add_argument("-o", "--output", metavar="FILE", help="default: FEED.FORMAT here")
    download.add_argument(
        "--url", help=f"the API's base URL (default: ${API_URL_VARIABLES[0]}, else the local stack)"
    )
    download.add_argument("--key", help=f"the API key (default: ${API_KEY_VARIABLE})")
    download.add_argument("--query", default="", help="the feed's parameters, e.g. category=toys")
    download.add_argument(
        "--max-wait", type=float, default=900.0, help="seconds to wait out 202/429 (default 900)"
    )
    download.set_defaults(run=_download)

    return parser


if __name__ == "__main__":
    raise SystemExit(main())
