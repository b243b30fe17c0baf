"""`offload-local` (what `make run` starts): the local stack in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from offload_local.edge import EdgeFailed
from offload_local.servers import PortInUse
from offload_local.stack import DEMO_KEYS, LocalStack
from offload_local.template import ROOT, TEMPLATE_PATH, Function

DEFAULT_ENV_FILE = ROOT / ".offload" / "local.env"
MAX_PORT = 65535


def main(argv: Sequence[str] | None = None) -> int:
    """Start the stack, print how to use it, serve until SIGINT or SIGTERM."""
    args = _parser().parse_args(argv)
    _log_to_stderr()
    # Requests that end before adding a metric (401, 404, ...) are normal, not news.
    warnings.filterwarnings("ignore", "No application metrics to publish")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack = LocalStack(
            port=args.port,
            emulator_port=args.emulator_port,
            edge_port=None if args.no_edge else args.edge_port,
            page_port=None if args.no_page else args.page_port,
            seed=not args.no_seed,
            parameters=dict(args.parameter_overrides),
            template=args.template,
            origin_port=args.origin_port,
        )
    except ValueError as exc:
        print(f"offload-local: {exc}", file=sys.stderr)
        return 2
    except PortInUse as exc:  # the origin binds when the stack is made
        print(f"offload-local: {exc}", file=sys.stderr)
        return 1
    try:
        stack.start()
        _rehearse_outages(stack)
        stack.write_env_file(args.env_file)
        print(banner(stack, args.env_file), flush=True)
        if stack.edge_missing:
            print(f"offload-local: {stack.edge_missing}", file=sys.stderr, flush=True)
        stop.wait()
    except (PortInUse, EdgeFailed) as exc:
        print(f"offload-local: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        if stop.is_set():
            args.env_file.unlink(missing_ok=True)
    print("offload-local: stopped", file=sys.stderr)
    return 0


def _rehearse_outages(stack: LocalStack) -> None:
    """SIGUSR1 takes the AWS emulator down, SIGUSR2 brings it back: an outage to rehearse."""
    log = logging.getLogger("offload_local")

    def on_signal(signum: int, frame: FrameType | None) -> None:
        down = signum == signal.SIGUSR1
        action = stack.emulator.pause if down else stack.emulator.resume
        # Stopping a server waits for its loop: not in a signal handler.
        threading.Thread(target=action, name="emulator outage", daemon=True).start()
        log.info("AWS emulator %s", "down (SIGUSR2 brings it back)" if down else "back")

    signal.signal(signal.SIGUSR1, on_signal)
    signal.signal(signal.SIGUSR2, on_signal)


def _log_to_stderr() -> None:
    """The stack's own messages (requests, failures) on stderr; the SDKs' chatter stays off."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("offload-local: %(message)s"))
    stack_logger = logging.getLogger("offload_local")
    stack_logger.addHandler(handler)
    stack_logger.setLevel(logging.INFO)
    stack_logger.propagate = False


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (and exit 2), not the usage block and the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _port_from(variable: str, fallback: int) -> dict[str, Any]:
    """`--x-port`'s type and default: digits from 0 to 65535, given or from `$variable`."""

    def port(text: str) -> int:
        if not text.strip().isdigit() or int(text) > MAX_PORT:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a port: a whole number from 0 to {MAX_PORT} "
                f"(from the option or ${variable})"
            )
        return int(text)

    port.__name__ = "port"
    # A string default goes through `type` too, so $PORT=abc is refused as --port abc is.
    return {"type": port, "default": os.environ.get(variable) or str(fallback)}


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="offload-local", description=__doc__)
    parser.add_argument(
        "--port",
        **_port_from("PORT", 3000),
        help="API port on 127.0.0.1 (default: $PORT or 3000; 0 picks a free one)",
    )
    parser.add_argument(
        "--emulator-port",
        **_port_from("EMULATOR_PORT", 0),
        help="AWS emulator port on 127.0.0.1 (default: $EMULATOR_PORT or a free one)",
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        default=DEFAULT_ENV_FILE,
        help=f"where to write the export lines (default: {DEFAULT_ENV_FILE})",
    )
    parser.add_argument(
        "--edge-port",
        **_port_from("EDGE_PORT", 3080),
        help="the edge (Varnish as the CDN) on 127.0.0.1 (default: $EDGE_PORT or 3080; 0: free)",
    )
    parser.add_argument("--no-edge", action="store_true", help="serve the API only")
    parser.add_argument(
        "--origin-port",
        **_port_from("ORIGIN_PORT", 0),
        help="the demo origin (the API origin feeds fetch from) on 127.0.0.1 (default: "
        "$ORIGIN_PORT or a free one); unused when OriginBaseUrl is given",
    )
    parser.add_argument(
        "--page-port",
        **_port_from("PAGE_PORT", 3090),
        help="the demo page, an origin of its own (default: $PAGE_PORT or 3090; 0: free)",
    )
    parser.add_argument("--no-page", action="store_true", help="no demo page")
    parser.add_argument(
        "--parameter-overrides",
        nargs="*",
        type=_parameter,
        default=[],
        metavar="NAME=VALUE",
        help="template parameters, as sam deploy takes them (e.g. PointerMaxAgeSeconds=2)",
    )
    parser.add_argument(
        "--template",
        type=Path,
        default=TEMPLATE_PATH,
        help="the SAM template to serve (default: the project's template.yaml)",
    )
    parser.add_argument("--no-seed", action="store_true", help="skip the demo keys and data")
    return parser


def _parameter(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def banner(stack: LocalStack, env_file: Path) -> str:
    """What to tell a user once the stack is up: URLs, keys, and lines that work as printed."""
    api = stack.public_url
    try:
        shown = env_file.resolve().relative_to(Path.cwd())
    except ValueError:
        shown = env_file
    keys = [
        f"  {demo.key:<16} client {demo.client_id}, scope {demo.scope}"
        + (f", {demo.hourly_limit} requests/hour" if demo.scope == "feeds" else "")
        for demo in DEMO_KEYS
    ]
    lines = [
        "",
        "Offload is running:",
        *(
            [f"  {api}  the edge (Varnish, as the CDN): what clients use"]
            if stack.edge is not None
            else []
        ),
        f"  {stack.api_url}  the API (as API Gateway)",
        *(
            [f"  {stack.page.url}  the demo page (another origin, reading the API by CORS)"]
            if stack.page is not None
            else []
        ),
        f"  {stack.emulator.endpoint_url}  the AWS emulator (moto)",
        *(
            [f"  {stack.origin.url}  the demo origin (what origin-backed feeds fetch)"]
            if stack.origin is not None
            else []
        ),
        f"  table {stack.environment['TABLE_NAME']}, bucket {stack.environment['BUCKET_NAME']}",
        "",
        "Demo API keys (local only):",
        *keys,
        "",
        "Try:",
        *(f"  {line}" for line in curl_examples(api, stack.stack.functions(), stack.feeds())),
        "",
        "For the offload command and AWS tools against this stack:",
        f"  source {shlex.quote(str(shown))}",
        "  offload keys create --client acme --hourly-limit 5",
        "",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def curl_examples(
    api: str, functions: Iterable[Function] = (), feeds: Iterable[str] = ("catalog",)
) -> list[str]:
    """Shell lines that work as printed against the demo data, per route family declared
    and (for the demo's catalog) per feed the plugins registered."""
    routes = {route.key for function in functions for route in function.routes}
    lines = [] if "catalog" not in feeds else _catalog_examples(api)
    if "price-list" in feeds:
        feeds_key = DEMO_KEYS[0].key
        lines.append(
            f"curl -L -H 'X-Api-Key: {feeds_key}' '{api}/feeds/price-list.csv?currency=usd'"
            " -o price-list.csv"
        )
    if "GET /{resource}/{resource_id}/{collection}/index" in routes:
        lines.append(f"curl -L {api}/users/42/matches/index")
        lines.append(f"curl -L {api}/repos/offload/releases/index")
    return lines


def _catalog_examples(api: str) -> list[str]:
    feeds, admin = DEMO_KEYS[0].key, DEMO_KEYS[1].key
    return [
        f"curl -L -H 'X-Api-Key: {feeds}' {api}/feeds/catalog.json -o catalog.json",
        f"curl -L -H 'Authorization: Bearer {feeds}' '{api}/feeds/catalog.xml?category=shoes'"
        " -o shoes.xml",
        f"curl -sSL -o /dev/null -D - '{api}/feeds/catalog.json?key={feeds}'",
        f"curl -X POST -H 'X-Api-Key: {admin}' -H 'Content-Type: application/json'"
        f""" -d '{{"feed": "catalog"}}' {api}/invalidations""",
    ]

if __name__ == "__main__":
    sys.exit(main())
