"""Running template functions in-process, one module instance per simulated container."""

from __future__ import annotations

import importlib.util
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from offload_local.isolation import isolate_logger_state, isolate_router_state, serialise_metrics
from offload_local.template import Function

Handler = Callable[[dict, Any], Any]
_instances = itertools.count(1)


@dataclass
class LocalContext:
    """The parts of LambdaContext that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:local"
    timeout_seconds: int = 29
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self.started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


def load_handler(function: Function) -> Handler:
    """Import the function's handler module as a fresh instance: a cold start."""
    name = f"offload_fn_{function.logical_id}_{next(_instances)}"
    spec = importlib.util.spec_from_file_location(name, function.module_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {function.module_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, function.function_name)


class Containers:
    """Warm handler instances of one function, each serving one invocation at a time.

    Like Lambda: an idle container is reused; when all are busy a new one cold-starts, so
    module-level state (Powertools' resolver, caches) is never shared by two requests.
    """

    def __init__(self, function: Function) -> None:
        isolate_router_state()
        isolate_logger_state()
        serialise_metrics()
        self.function = function
        self._idle: list[Handler] = []
        self._lock = threading.Lock()

    @contextmanager
    def _checkout(self) -> Iterator[Handler]:
        with self._lock:
            handler = self._idle.pop() if self._idle else None
        if handler is None:
            handler = load_handler(self.function)
        try:
            yield handler
        finally:
            with self._lock:
                self._idle.append(handler)

    def invoke(self, event: dict) -> Any:
        with self._checkout() as handler:
            context = LocalContext(
                self.function.logical_id,
                invoked_function_arn=self.function.arn,
                timeout_seconds=self.function.timeout,
            )
            return handler(event, context)
