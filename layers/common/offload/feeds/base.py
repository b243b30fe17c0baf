"""What a feed declares: name, formats, parameters, freshness and its generator."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
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
    # API Gateway waits 30 s for the function: generation must end well before.
    generation_timeout_seconds: float = 10.0
    description: str = ""
    _by_name: dict[str, Parameter] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {p.name: p for p in self.parameters})
        if not SLUG.fullmatch(self.name):
            raise ValueError(f"feed name {self.name!r} is not a slug")
        if not 0 < self.generation_timeout_seconds <= MAX_GENERATION_SECONDS:
            raise ValueError(
                f"feed {self.name!r}: generation_timeout_seconds must be in "
                f"(0, {MAX_GENERATION_SECONDS}]"
            )

    def parameter(self, name: str) -> Parameter | None:
        return self._by_name.get(name)
