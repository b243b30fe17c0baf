"""Powertools logger, metrics and tracer, created once and shared by every function."""

from __future__ import annotations

import numbers
import traceback
from contextlib import nullcontext
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

METRICS_NAMESPACE = "Offload"


class _Unrecorded(BaseSegment):
    """A segment nobody records."""

    def close(self, end_time: int | None = None) -> None:
        pass

    def add_subsegment(self, subsegment: Any) -> None:
        pass

    def remove_subsegment(self, subsegment: Any) -> None:
        pass

    def put_annotation(self, key: str, value: str | numbers.Number | bool) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def add_exception(
        self, exception: BaseException, stack: list[traceback.StackSummary], remote: bool = False
    ) -> None:
        pass


class Untraced(BaseProvider):
    """X-Ray's stand-in while tracing is off.

    Powertools' Tracer imports the X-Ray SDK even when disabled, and its decorators still
    open (disabled) subsegments on every call; this provider never loads the SDK, and a
    decorated call costs an empty context manager.
    """

    _segment = _Unrecorded()

    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Any:
        return nullcontext(self._segment)

    def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> Any:
        return nullcontext(self._segment)

    def put_annotation(self, key: str, value: str | numbers.Number | bool) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def patch(self, modules: Any) -> None:
        pass

    def patch_all(self) -> None:
        pass


def _tracer() -> Tracer:
    # Powertools' own rule: off with POWERTOOLS_TRACE_DISABLED, outside Lambda, or in SAM local.
    if Tracer._is_tracer_disabled():
        return Tracer(provider=Untraced(), disabled=True)
    return Tracer()


# The service name comes from POWERTOOLS_SERVICE_NAME, set per function in template.yaml.
logger = Logger()
metrics = Metrics(namespace=METRICS_NAMESPACE)
tracer = _tracer()
