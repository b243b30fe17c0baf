"""The demo's origin-backed feed: each client's price list, from the team's existing API."""

from __future__ import annotations

import re

from offload.feeds.origin import origin_feed
from offload.feeds.plugin import Parameter

CURRENCIES = ("eur", "usd", "gbp")

PRICE_LIST = origin_feed(
    "price-list",
    description="A client's prices, as the team's API exports them, optionally in a currency.",
    formats={"csv": "text/csv"},
    # Below OriginBaseUrl; the currency, when given, goes in the query string.
    url="/clients/{client_id}/price-list.{format}",
    parameters=(
        Parameter(
            "currency",
            pattern=re.compile("|".join(CURRENCIES)),
            description="one of " + ", ".join(CURRENCIES),
        ),
    ),
    max_age_seconds=300,
    generation_timeout_seconds=10.0,
    max_bytes=10 * 1024 * 1024,
)
