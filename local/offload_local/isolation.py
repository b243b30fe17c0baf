"""Making one process behave like many Lambda containers and one DynamoDB.

Lambda runs each container in its own process and serves one request per container at a
time; DynamoDB applies each request atomically. The local stack and the tests run everything
in one process, concurrently, so two shared pieces of state need fencing:

- Powertools keeps the event being resolved on the `BaseRouter` class, so concurrent
  invocations, even through separate handler modules, would read each other's requests.
  It is made per thread.
- moto's DynamoDB backend is not thread-safe: a cancelled transaction restores a copy of the
  whole table taken when it began, dropping other threads' writes. Its requests are applied
  one at a time.
"""

from __future__ import annotations

import threading
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

_ROUTER_STATE = ("current_event", "lambda_context")
_install_lock = threading.Lock()
_installed: set[str] = set()


class _PerThread:
    """A data descriptor whose value is per thread."""

    def __init__(self, local: threading.local, name: str) -> None:
        self._local, self._name = local, name

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        return getattr(self._local, self._name, None)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(self._local, self._name, value)


def isolate_router_state() -> None:
    """Keep Powertools' current event and context per thread, for the process's lifetime."""
    with _install_lock:
        if "router" in _installed:
            return
        local = threading.local()
        for name in _ROUTER_STATE:  # reads and writes through an instance (`app.current_event`)
            setattr(BaseRouter, name, _PerThread(local, name))
        # Writes to the class (`BaseRouter.current_event = ...`) go through its metaclass.
        BaseRouter.__class__ = type(  # type: ignore[method-assign]
            "PerThreadRouterMeta",
            (type(BaseRouter),),
            {name: _PerThread(local, name) for name in _ROUTER_STATE},
        )
        _installed.add("router")


def serialise_dynamodb() -> None:
    """Apply moto's DynamoDB requests one at a time, as DynamoDB applies each atomically."""
    from moto.dynamodb.responses import DynamoHandler

    with _install_lock:
        if "dynamodb" in _installed:
            return
        lock = threading.RLock()
        call_action = DynamoHandler.call_action

        def serialised(self: DynamoHandler) -> Any:
            with lock:
                return call_action(self)

        DynamoHandler.call_action = serialised  # type: ignore[method-assign]
        _installed.add("dynamodb")
