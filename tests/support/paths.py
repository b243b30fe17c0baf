"""One resource, one path: spellings the edge takes as they are, and those it refuses.

The same corpus checks the CloudFront Function in template.yaml (under Node) and the local
edge's VCL (through Varnish), so the two copies of the rule cannot drift apart.
"""

from __future__ import annotations

# Paths in RFC 3986's normal form: the edge passes them to the cache and the origin.
CANONICAL = (
    "/",
    "/users/42/matches/version",
    "/users/42/matches/index",
    "/matches/m-1001",
    "/feeds/catalog.json",
    "/repos/acme/releases/version",  # any collection's shape, declared or not
    "/matches/a%3Ab",  # an escaped reserved character, upper-case hex
    "/matches/caf%C3%A9",  # an escaped non-ASCII byte
    "/.well-known/security.txt",  # a dot inside a segment is not a dot segment
    "/users/42/matches/version.",
)
# Other spellings of a path, each of which would be another cached copy (or would take
# another behaviour, as `/feeds%2F...` takes the cached default instead of the feeds bypass).
NON_CANONICAL = (
    "/users/%34%32/matches/version",  # escaped digits
    "/users/42/matches/versio%6e",  # an escaped letter, lower-case hex
    "/users/42/matches/versio%6E",  # the same, upper-case hex
    "//users/42/matches/version",  # an empty segment at the start
    "/users/42//matches/version",  # ... in the middle
    "/feeds%2Fcatalog.json",  # an escaped slash
    "/feeds%2fcatalog.json",
    "//feeds/catalog.json",
    "/users/42/./matches/version",  # dot segments
    "/users/42/../42/matches/version",
    "/users/42/%2e%2e/42/matches/version",
    "/users/%7E42/matches/version",  # escaped unreserved punctuation: ~ - . _
    "/matches/m%2D1001",
    "/matches/m-1001%5F",
    "/matches/a%3ab",  # lower-case hex in an escape of a reserved character
    "/repos/%61cme/releases/version",
)
