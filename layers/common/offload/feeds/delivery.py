"""How a client wants its file delivered: redirect or link, and which copy it already has."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from offload.errors import InvalidRequest

LINK_MEDIA_TYPE = "application/vnd.offload.link+json"
# Media types a Lambda response carries as text; any other body would go out base64
# encoded, a third larger, so such files are never answered inline.
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-ndjson")
_TEXT_SUFFIXES = ("+json", "+xml")
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
        # Blank values kept: `?redirect=` and a bare `?redirect` are neither true nor false.
        values = [
            value
            for name, value in parse_qsl(raw_query, keep_blank_values=True)
            if name == REDIRECT_QUERY
        ]
        if len(values) > 1:
            raise InvalidRequest(f"parameter {REDIRECT_QUERY!r} is given more than once")
        redirect = values[0].strip().lower() if values else "true"
        if redirect not in {"true", "false"}:
            raise InvalidRequest(f"{REDIRECT_QUERY} must be true or false")
        # Named, with a weight above zero: `q=0` means "not this" (RFC 9110 §12.4.2), and
        # a wildcard such as `*/*` asks for no link.
        asks_link = weights(headers.get("accept", "")).get(LINK_MEDIA_TYPE, 0.0) > 0
        return cls(
            link=redirect == "false" or asks_link,
            if_none_match=headers.get("if-none-match"),
            gzip=accepts_gzip(headers.get("accept-encoding", "")),
        )


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether `Accept-Encoding` allows gzip: named (or `*`) with a q-value above zero.

    No header means identity only here: curl without --compressed must get plain bytes.
    """
    found = weights(accept_encoding)
    return found.get("gzip", found.get("x-gzip", found.get("*", 0.0))) > 0


def weights(header: str) -> dict[str, float]:
    """The q-value of each item a content negotiation header names (`Accept`,
    `Accept-Encoding`), lower-cased; 1 when unstated, 0 when malformed."""
    found: dict[str, float] = {}
    for part in header.split(","):
        item, *parameters = (piece.strip() for piece in part.split(";"))
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if item:
            found[item.lower()] = weight
    return found


def sent_as_text(content_type: str) -> bool:
    """Whether a body of `content_type` fits a Lambda response as is, not base64-encoded."""
    media_type = content_type.split(";")[0].strip().lower()
    return media_type.startswith(_TEXT_TYPES) or media_type.endswith(_TEXT_SUFFIXES)
