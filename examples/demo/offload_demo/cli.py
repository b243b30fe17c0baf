"""The `offload-demo` command: writes the demo's data into a table (AWS or the local stack).

It reaches AWS through the standard environment, as `offload` does, and finds the table in
TABLE_NAME or --table.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from offload.cli import OneLineParser, whole_number
from offload.config import TABLE_NAME, Settings
from offload.table import bind_models
from offload_demo.catalog import DEMO_PRODUCTS
from offload_demo.seed import seed as seed_all

MAX_PRODUCTS = 1_000_000


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `offload-demo` console script."""
    parser = OneLineParser(prog="offload-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--table", help=f"DynamoDB table (default: ${TABLE_NAME})")
    commands = parser.add_subparsers(dest="command", required=True)
    seed = commands.add_parser(
        "seed", help="write the demo products, matches and releases (idempotent)"
    )
    seed.add_argument(
        "--products",
        type=whole_number(1, MAX_PRODUCTS),
        default=DEMO_PRODUCTS,
        help=f"how many products, 1 to {MAX_PRODUCTS:,} (default: {DEMO_PRODUCTS})",
    )
    args = parser.parse_args(argv)
    table = args.table or os.environ.get(TABLE_NAME)
    if not table:
        print(
            f"offload-demo: no table: set {TABLE_NAME} (with the local stack: "
            "source .offload/local.env) or pass --table",
            file=sys.stderr,
        )
        return 2
    settings = Settings.from_mapping({**os.environ, TABLE_NAME: table})
    bind_models(settings)
    seed_all(settings, products=args.products)
    print(f"wrote {args.products} demo products, the demo matches and releases to {table}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
