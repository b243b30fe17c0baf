"""How a client wants its file delivered: redirect or link, and which copy it already has."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from offload.errors import InvalidRequest

LINK_MEDIA_TYPE = "application/vnd.offload.link+json"
# A delivery option, not a feed parameter: never part of the cache key.
REDIRECT_QUERY = "redirect"


@dataclass(frozen=True, slots=True)
class Delivery:
    """`link`: answer 200 with the signed URL instead of a 307 to it. `if_none_match`: the
    entity tags the client holds; the current one spares it the download (304). `gzip`: the
    signed URL may be the gzip-encoded copy."""

    link: bool = False
    if_none_match: str | None = None
    # The client takes `Content-Encoding: gzip` (its `Accept-Encoding` says so).
    gzip: bool = False

    @classmethod
    def of(cls, headers: Mapping[str, str], raw_query: str) -> Delivery:
        """From `Accept`, `Accept-Encoding`, `If-None-Match` and `?redirect=` (header names
        lower-cased, as API Gateway passes them)."""
        values = [value for name, value in parse_qsl(raw_query) if name == REDIRECT_QUERY]
        if len(values) > 1:
            raise InvalidRequest(f"parameter {REDIRECT_QUERY!r} is given more than once")
        redirect = values[0].strip().lower() if values else "true"
        if redirect not in {"true", "false"}:
            raise InvalidRequest(f"{REDIRECT_QUERY} must be true or false")
        accepted = {
            part.split(";")[0].strip().lower() for part in headers.get("accept", "").split(",")
        }
        return cls(
            link=redirect == "false" or LINK_MEDIA_TYPE in accepted,
            if_none_match=headers.get("if-none-match"),
            gzip=accepts_gzip(headers.get("accept-encoding", "")),
        )


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether `Accept-Encoding` allows gzip: named (or `*`) with a q-value above zero.

    No header means identity only here: curl without --compressed must get plain bytes.
    """
    weights: dict[str, float] = {}
    for part in accept_encoding.split(","):
        coding, *parameters = (piece.strip() for piece in part.split(";"))
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if coding:
            weights[coding.lower()] = weight
    return weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0))) > 0
