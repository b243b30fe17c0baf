"""What a feed declares: name, formats, parameters, freshness and its generator."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from offload.config import ConfigurationError, Settings

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
# Stands for the client in a shared feed's keys: no client id (a slug) can be it.
SHARED_OWNER = "_shared"
# API Gateway waits 30 s for the function; a generation must leave room to upload and answer.
MAX_GENERATION_SECONDS = 25.0


@dataclass(frozen=True, slots=True)
class Parameter:
    """A query parameter a feed accepts; values are normalised, then must match `pattern`."""

    name: str
    pattern: re.Pattern[str] = SLUG
    normalise: Callable[[str], str] = lambda value: value.strip().lower()
    description: str = ""


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """What a generator is asked to build."""

    feed: str
    format: str
    # Who asked; for a shared feed, SHARED_OWNER: the file must not depend on the client.
    client_id: str
    params: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Feed:
    """A feed plugin. `generate` returns the whole file for one format and parameter set."""

    name: str
    formats: Mapping[str, str]
    generate: Callable[[GenerationRequest], bytes]
    parameters: tuple[Parameter, ...] = ()
    max_age_seconds: int = 3600
    # The file is the same for every client: one generation serves them all (the key and
    # the limit stay per client). A client's invalidation then leaves it alone.
    shared: bool = False
    # Checked with the lock settings by `check_timing` when the feeds function starts.
    generation_timeout_seconds: float = 10.0
    description: str = ""
    _by_name: dict[str, Parameter] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {p.name: p for p in self.parameters})
        if not SLUG.fullmatch(self.name):
            raise ValueError(f"feed name {self.name!r} is not a slug")

    def parameter(self, name: str) -> Parameter | None:
        return self._by_name.get(name)


def check_timing(feeds: Iterable[Feed], settings: Settings) -> None:
    """Every feed's generation fits API Gateway's wait and the rebuild lock's lease."""
    for feed in feeds:
        timeout = feed.generation_timeout_seconds
        if not 0 < timeout <= MAX_GENERATION_SECONDS:
            raise ConfigurationError(
                f"feed {feed.name!r} may generate for {timeout} s; it must be more than 0 "
                f"and at most {MAX_GENERATION_SECONDS} s (API Gateway waits 30 s)"
            )
        if timeout >= settings.lock_lease_seconds:
            # A lease shorter than a generation would let a second one start meanwhile.
            raise ConfigurationError(
                f"feed {feed.name!r} may generate for {timeout} s, "
                f"longer than the {settings.lock_lease_seconds} s lock lease"
            )
