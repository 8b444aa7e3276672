"""Counting calls: what the snapshot, the metrics and the failure-rate rule read.

Kept apart from the state machine, as Resilience4j keeps its
``CircuitBreakerMetrics``: the machine decides, these only count.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections import deque

# Upper bounds (seconds) of the latency bins; one more bin holds everything slower.
LATENCY_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


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


class Latencies:
    """How long calls took, in fixed bins (a histogram): one ``Tally`` bump per timed call.

    Fixed bins add up across processes, which percentiles of each process would not.
    """

    __slots__ = ("_bins",)

    def __init__(self) -> None:
        self._bins = tuple(Tally() for _ in range(len(LATENCY_BOUNDS) + 1))

    def observe(self, seconds: float) -> None:
        self._bins[bisect.bisect_left(LATENCY_BOUNDS, seconds)].add()

    def values(self) -> list[int]:
        """The count of each bin so far (cumulative; the fleet reporter takes differences)."""
        return [tally.value for tally in self._bins]

    def after_fork(self) -> None:
        for tally in self._bins:
            tally.after_fork()


class CallCounts:
    """This process's calls through one breaker, by outcome, and how long the timed ones took.

    Cumulative, never reset: the fleet reporter (resilience/fleet/) reads
    them in the background and publishes the differences, so a call costs
    one counter bump and no I/O.
    """

    TALLIES = ("failures", "ignored", "probes", "rejections", "retries", "successes")
    __slots__ = (*TALLIES, "latency")

    def __init__(self) -> None:
        self.successes = Tally()
        self.failures = Tally()
        self.rejections = Tally()
        self.ignored = Tally()
        self.retries = Tally()
        self.probes = Tally()
        self.latency = Latencies()

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name).value for name in self.TALLIES}

    def after_fork(self) -> None:
        for name in self.TALLIES:
            getattr(self, name).after_fork()
        self.latency.after_fork()


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
