"""Counting calls: what the snapshot, the metrics and the failure-rate rule read.

Kept apart from the state machine, as Resilience4j keeps its
``CircuitBreakerMetrics``: the machine decides, these only count.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque


class Tally:
    """A lock-free counter: ``add()`` is ``itertools.count.__next__`` (atomic in C)."""

    __slots__ = ("_counter", "_lock", "_reads", "add")

    def __init__(self) -> None:
        self._counter = itertools.count()
        self.add = self._counter.__next__
        self._reads = 0
        self._lock = threading.Lock()

    @property
    def value(self) -> int:
        # Reading consumes one number; subtract the numbers earlier reads took.
        with self._lock:
            value = next(self._counter) - self._reads
            self._reads += 1
            return value

    def after_fork(self) -> None:
        self._lock = threading.Lock()


class CallCounts:
    """This process's calls through one breaker, by outcome."""

    __slots__ = ("failures", "ignored", "probes", "rejections", "retries", "successes")

    def __init__(self) -> None:
        self.successes = Tally()
        self.failures = Tally()
        self.rejections = Tally()
        self.ignored = Tally()
        self.retries = Tally()
        self.probes = Tally()

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name).value for name in sorted(self.__slots__)}

    def after_fork(self) -> None:
        for name in self.__slots__:
            getattr(self, name).after_fork()


class FailureWindow:
    """The outcomes of the last ``size`` calls of this process (Resilience4j's count window)."""

    __slots__ = ("_calls", "minimum", "threshold")

    def __init__(self, size: int, minimum: int, threshold: float) -> None:
        self._calls: deque[int] = deque(maxlen=max(1, size))
        self.minimum = max(1, minimum)
        self.threshold = threshold

    def record(self, failed: bool) -> str | None:
        """Note one outcome; the reason to open when the rate crosses the threshold."""
        self._calls.append(int(failed))
        calls = len(self._calls)
        if not failed or calls < self.minimum:
            return None
        rate = 100.0 * sum(self._calls) / calls
        if rate < self.threshold:
            return None
        return (
            f"failure rate {rate:.0f}% over the last {calls} calls (threshold {self.threshold:g}%)"
        )

    def rate(self) -> float | None:
        if not self._calls:
            return None
        return round(100.0 * sum(self._calls) / len(self._calls), 1)

    def clear(self) -> None:
        self._calls.clear()
