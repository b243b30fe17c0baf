"""Invalidation scopes (everything, one feed, one client): built, stored and described here."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """What an invalidation covers; the values are the request fields that name them."""

    GLOBAL = "global"
    FEED = "feed"
    CLIENT = "client"


@dataclass(frozen=True, slots=True)
class Scope:
    """Everything (`Scope.everything()`), one feed's files, or one client's files."""

    kind: Kind
    name: str = ""

    @classmethod
    def everything(cls) -> Scope:
        return cls(Kind.GLOBAL)

    @classmethod
    def feed(cls, name: str) -> Scope:
        return cls(Kind.FEED, name)

    @classmethod
    def client(cls, client_id: str) -> Scope:
        return cls(Kind.CLIENT, client_id)

    @classmethod
    def covering(cls, feed: str, owner: str) -> tuple[Scope, Scope, Scope]:
        """The scopes whose invalidations cover one owner's copy of one feed: a client's, or
        the shared one (whose client scope no client invalidation can name)."""
        return (cls.everything(), cls.feed(feed), cls.client(owner))

    @property
    def key(self) -> str:
        """The stored form: `global`, `feed#<name>` or `client#<id>`."""
        return self.kind.value if self.kind is Kind.GLOBAL else f"{self.kind}#{self.name}"

    def describe(self) -> dict[str, Any]:
        """As a request names it: `{"scope": "global"}`, `{"feed": F}` or `{"client": C}`."""
        return {"scope": Kind.GLOBAL.value} if self.kind is Kind.GLOBAL else {self.kind: self.name}
