"""A clock tests move by hand: leases, windows and waits without sleeping."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class FakeClock:
    """`clock()` is the time; `clock.sleep(s)` moves it on at once and remembers the wait."""

    now: float = field(default_factory=time.time)
    slept: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
