"""The `offload` command: keys, invalidations and feeds, against AWS or the local stack.

It reaches AWS through the standard environment (credentials, region, AWS_ENDPOINT_URL),
and finds the table in TABLE_NAME or --table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from offload import auth
from offload.collections.store import CollectionStore
from offload.config import DEFAULT_HOURLY_LIMIT, TABLE_NAME, Settings, default_of
from offload.errors import InvalidRequest, NotFound
from offload.feeds import REGISTRY
from offload.feeds.catalog import product_records, seed_products
from offload.invalidation import apply, parse_invalidation
from offload.models import bind_models


class UsageError(Exception):
    """A command that cannot run as given."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `offload` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = None if args.command == "feeds" else _bind(args.table)
        return args.run(args, settings)
    except UsageError as exc:
        print(f"offload: {exc}", file=sys.stderr)
        return 2


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


def _keys_create(args: argparse.Namespace, settings: Settings | None) -> int:
    assert settings is not None  # bound for every command but `feeds`
    # The limit is the client's, shared by all of its keys: naming another one for a new
    # key changes it for the client (and says so); naming none keeps the client's.
    previous = auth.client_limit(args.client) if auth.CLIENT_ID.fullmatch(args.client) else None
    limit = args.hourly_limit or previous or settings.default_hourly_limit
    try:
        key = auth.create_key(args.client, scopes={args.scope}, hourly_limit=limit)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print(f"client:       {args.client}")
    print(f"scope:        {args.scope}")
    print(f"hourly limit: {limit} (the client's, shared by all of its keys)")
    print(f"key:          {key}")
    if previous is not None and previous != limit:
        print(
            f"{args.client}'s hourly limit changed from {previous} to {limit}, "
            "for every key of the client",
            file=sys.stderr,
        )
    print("The key is shown only now; Offload stores its SHA-256 hash.", file=sys.stderr)
    return 0


def _keys_list(args: argparse.Namespace, settings: Settings | None) -> int:
    # LIMIT/H is the client's, the same on each of its keys' lines.
    limits = auth.client_limits()
    print(f"{'CLIENT':<20} {'KEY':<12} {'SCOPES':<14} {'LIMIT/H':>8}  {'STATE':<8} CREATED")
    for record in auth.list_keys():
        limit = limits.get(record.client_id, int(record.hourly_limit))
        created = datetime.fromtimestamp(int(record.created_at), tz=UTC).strftime("%Y-%m-%d %H:%M")
        state = "revoked" if record.disabled else "active"
        scopes = ",".join(sorted(record.scopes))
        print(
            f"{record.client_id:<20} {record.key_prefix + '…':<12} {scopes:<14} "
            f"{limit:>8}  {state:<8} {created}"
        )
    return 0


def _keys_revoke(args: argparse.Namespace, settings: Settings | None) -> int:
    count = auth.revoke(client_id=args.client, key=args.key)
    if count == 0:
        raise UsageError("no such key or client")
    print(f"revoked {count} key(s); warm containers stop accepting them within their cache time")
    return 0


def _invalidate(args: argparse.Namespace, settings: Settings | None) -> int:
    assert settings is not None
    if args.glob:
        body: dict[str, object] = {"scope": "global"}
    elif args.collection:
        body = {"collection": args.collection}
    else:
        body = {"feed": args.feed} if args.feed else {"client": args.client}
    if args.soft and not args.collection:
        body["soft"] = True
    try:
        request = parse_invalidation(body)
    except (InvalidRequest, NotFound) as exc:
        raise UsageError(exc.detail) from exc
    answer = apply(request, now=time.time(), collections=CollectionStore.for_settings(settings))
    print(json.dumps(answer))
    return 0


def _feeds_list(args: argparse.Namespace, settings: Settings | None) -> int:
    for feed in REGISTRY:
        params = ", ".join(p.name for p in feed.parameters) or "-"
        print(
            f"{feed.name}: formats {', '.join(sorted(feed.formats))}; parameters {params}; "
            f"max age {feed.max_age_seconds} s. {feed.description}"
        )
    return 0


def _catalog_seed(args: argparse.Namespace, settings: Settings | None) -> int:
    written = seed_products(product_records(args.count))
    print(f"wrote {written} demo products")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="offload", description=__doc__.splitlines()[0])
    parser.add_argument("--table", help=f"DynamoDB table (default: ${TABLE_NAME})")
    commands = parser.add_subparsers(dest="command", required=True)

    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    key_commands = keys.add_subparsers(dest="action", required=True)
    create = key_commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--client", required=True)
    create.add_argument(
        "--hourly-limit",
        type=int,
        help="requests per hour for the client, shared by all of its keys (default: the "
        f"client's current limit; for a new client ${DEFAULT_HOURLY_LIMIT}, "
        f"else {default_of('default_hourly_limit')})",
    )
    create.add_argument("--scope", choices=sorted(auth.SCOPES), default=auth.SCOPE_FEEDS)
    create.set_defaults(run=_keys_create)
    key_commands.add_parser("list", help="list keys (hash prefixes only)").set_defaults(
        run=_keys_list
    )
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

    feeds = commands.add_parser("feeds", help="list the registered feeds")
    feeds.add_subparsers(dest="action", required=True).add_parser("list").set_defaults(
        run=_feeds_list
    )

    catalog = commands.add_parser("catalog", help="the demo catalog feed's data")
    seed = catalog.add_subparsers(dest="action", required=True).add_parser(
        "seed", help="write deterministic demo products"
    )
    seed.add_argument("--count", type=int, default=2000)
    seed.set_defaults(run=_catalog_seed)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
