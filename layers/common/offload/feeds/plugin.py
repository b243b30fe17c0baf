"""What a feed declares: name, formats, parameters, freshness and its generator."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from offload.config import GENERATOR_FUNCTION_NAME, ConfigurationError, Settings

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
# Stands for the client in a shared feed's keys: no client id (a slug) can be it.
SHARED_OWNER = "_shared"
# API Gateway waits 30 s for the function; a generation must leave room to upload and answer.
MAX_GENERATION_SECONDS = 25.0
# A longer one runs in the generator function, which Lambda stops at 15 minutes; the rest
# is room to upload.
MAX_BACKGROUND_SECONDS = 840.0


@dataclass(frozen=True, slots=True)
class Parameter:
    """A query parameter a feed accepts; values are normalised, then must match `pattern`."""

    name: str
    pattern: re.Pattern[str] = SLUG
    normalise: Callable[[str], str] = lambda value: value.strip().lower()
    description: str = ""


@dataclass(frozen=True, slots=True)
class Validators:
    """What a feed's source said identifies the file it gave (HTTP's ETag, Last-Modified)."""

    etag: str | None = None
    last_modified: str | None = None

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)


@dataclass(frozen=True, slots=True)
class Generated:
    """A generator's file with its source's validators, for a later conditional rebuild."""

    data: bytes
    validators: Validators = Validators()


@dataclass(frozen=True, slots=True)
class Unchanged:
    """The source says the current file is still right (an HTTP 304): renew it, store nothing."""


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """What a generator is asked to build."""

    feed: str
    format: str
    # Who asked; for a shared feed, SHARED_OWNER: the file must not depend on the client.
    client_id: str
    params: Mapping[str, str]
    # The current file's validators when it is only old (no invalidation covers it): a
    # generator may answer Unchanged if its source says nothing changed since.
    previous: Validators | None = None


# What a generator returns: the whole file, the file with validators, or Unchanged (only
# when asked with `previous`).
Generator = Callable[[GenerationRequest], bytes | Generated | Unchanged]


@dataclass(frozen=True, slots=True)
class Feed:
    """A feed plugin. `generate` returns the whole file for one format and parameter set."""

    name: str
    formats: Mapping[str, str]
    generate: Generator
    parameters: tuple[Parameter, ...] = ()
    max_age_seconds: int = 3600
    # The file is the same for every client: one generation serves them all (the key and
    # the limit stay per client). A client's invalidation then leaves it alone.
    shared: bool = False
    # Checked with the lock settings by `check_timing` when the feeds function starts.
    # Beyond MAX_GENERATION_SECONDS the file is generated in the background: requests are
    # answered 202 (or from a stale file) until it is stored.
    generation_timeout_seconds: float = 10.0
    description: str = ""
    _by_name: dict[str, Parameter] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {p.name: p for p in self.parameters})
        if not SLUG.fullmatch(self.name):
            raise ValueError(f"feed name {self.name!r} is not a slug")

    def parameter(self, name: str) -> Parameter | None:
        return self._by_name.get(name)

    @property
    def in_background(self) -> bool:
        """Whether a generation may outlast API Gateway's wait, so a request cannot await it."""
        return self.generation_timeout_seconds > MAX_GENERATION_SECONDS


def lease_seconds(feed: Feed, settings: Settings) -> float:
    """The lease a request takes a rebuild lock on one of `feed`'s files with.

    A generation in the request renews the lock's short lease while it runs. A background
    one starts only when Lambda delivers its event, some time after the request took the
    lock, so the first lease covers its whole run; once the generator function runs, it
    renews the short lease as a request does.
    """
    if feed.in_background:
        return feed.generation_timeout_seconds + settings.lock_lease_seconds
    return settings.lock_lease_seconds


def check_timing(feeds: Iterable[Feed], settings: Settings) -> None:
    """Every feed's generation fits where it runs (its owner renews the lock meanwhile)."""
    for feed in feeds:
        timeout = feed.generation_timeout_seconds
        if not 0 < timeout <= MAX_BACKGROUND_SECONDS:
            raise ConfigurationError(
                f"feed {feed.name!r} may generate for {timeout} s; it must be more than 0 "
                f"and at most {MAX_BACKGROUND_SECONDS} s (Lambda stops at 15 minutes)"
            )
        if feed.in_background and settings.generator_function_name is None:
            raise ConfigurationError(
                f"feed {feed.name!r} may generate for {timeout} s, longer than API Gateway "
                f"waits, and {GENERATOR_FUNCTION_NAME} names no function to run it in"
            )
