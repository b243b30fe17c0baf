"""Making one process behave like many Lambda containers and one DynamoDB.

Lambda runs each container in its own process and serves one request per container at a
time; DynamoDB applies each request atomically. The local stack and the tests run everything
in one process, concurrently, so shared pieces of state need fencing:

- Powertools keeps the event being resolved on the `BaseRouter` class, and the route's
  arguments in the resolver's `context`, so concurrent invocations would read each other's
  requests (even through separate handler modules) and path parameters. Both are made per
  thread.
- Powertools Logger keeps the keys every line carries (the invocation's context, its
  correlation id, what the handler appended) in its one formatter, so a concurrent
  invocation's lines would carry them too. They are kept per thread: an invocation's
  thread starts from the keys the logger was made with, and `clear_state` resets them.
- Powertools Metrics keeps one metric set per process; a container flushing it while another
  adds to it would fail mid-iteration. Its reads and writes take one lock.
- moto's DynamoDB backend is not thread-safe: a cancelled transaction restores a copy of the
  whole table taken when it began, dropping other threads' writes. Its requests are applied
  one at a time. That copy also costs time in proportion to the table (a second per
  transaction once the demo data and a few hundred matches are in); with requests applied
  one at a time, the items a transaction names are all it can change, so only those are saved.
"""

from __future__ import annotations

import copy
import functools
import threading
import types
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


class _PerThreadDict:
    """A data descriptor holding a dict per thread and per instance, created on first use."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        dicts = self._local.__dict__.setdefault("dicts", {})
        return dicts.setdefault(id(obj), {})

    def __set__(self, obj: Any, value: dict) -> None:
        self._local.__dict__.setdefault("dicts", {})[id(obj)] = value


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
        BaseRouter.context = _PerThreadDict()  # type: ignore[assignment]
        _installed.add("router")


class _PerThreadOrShared:
    """A data descriptor whose value is per thread and per instance; a thread that has not
    set one reads the first value ever set (the one the instance was made with)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._local = threading.local()

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        values = self._local.__dict__.setdefault("values", {})
        if id(obj) not in values:
            # The instance's own attribute, set before this descriptor was installed or by
            # its first assignment, is what every thread starts from.
            values[id(obj)] = copy.copy(obj.__dict__.get(self._name))
        return values[id(obj)]

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__.setdefault(self._name, copy.copy(value))
        self._local.__dict__.setdefault("values", {})[id(obj)] = value


def isolate_logger_state() -> None:
    """Keep each Powertools formatter's per-line keys per thread, for the process's lifetime.

    A formatter made before keeps what it had as the keys every thread starts from.
    """
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    with _install_lock:
        if "logger" in _installed:
            return
        LambdaPowertoolsFormatter.log_format = _PerThreadOrShared("log_format")  # type: ignore[assignment]
        _installed.add("logger")


def serialise_metrics() -> None:
    """One container at a time adds to, serialises or flushes the shared metric set."""
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
        AmazonCloudWatchEMFProvider as Provider,
    )

    with _install_lock:
        if "metrics" in _installed:
            return
        lock = threading.RLock()
        for name in ("add_metric", "add_dimension", "add_metadata", "serialize_metric_set",
                     "flush_metrics", "clear_metrics"):  # fmt: skip
            setattr(Provider, name, _locked(getattr(Provider, name), lock))
        _installed.add("metrics")


def _locked(method: Any, lock: threading.RLock) -> Any:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    return locked


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
        _save_only_named_items()
        _installed.add("dynamodb")


def _save_only_named_items() -> None:
    """Roll a cancelled transaction back from copies of the items it names, not the tables."""
    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    def deepcopy(value: Any, memo: Any = None) -> Any:
        # moto's whole-table backup becomes the live table; the items are restored below.
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    models.copy = types.SimpleNamespace(deepcopy=deepcopy)  # type: ignore[assignment]
    transact = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = []
        for operation in transact_items:
            ((kind, spec),) = operation.items()
            table = self.tables.get(spec.get("TableName"))
            key = spec.get("Item" if kind == "Put" else "Key")
            if table is None or not key or table.hash_key_attr not in key:
                continue
            hash_value = DynamoType(key[table.hash_key_attr])
            range_attr = table.range_key_attr
            range_value = DynamoType(key[range_attr]) if range_attr and range_attr in key else None
            if table.has_range_key and range_value is None:
                continue
            found = table.get_item(hash_value, range_value)
            saved.append((table, hash_value, range_value, copy.deepcopy(found)))
        try:
            transact(self, transact_items)
        except Exception:
            for table, hash_value, range_value, item in reversed(saved):
                if item is None and range_value is None:
                    table.items.pop(hash_value, None)
                elif item is None:
                    table.items.get(hash_value, {}).pop(range_value, None)
                elif range_value is None:
                    table.items[hash_value] = item
                else:
                    table.items[hash_value][range_value] = item
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
