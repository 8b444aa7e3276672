"""Counting calls: what the snapshot, the metrics and the window rules read.

Kept apart from the state machine, as Resilience4j keeps its
``CircuitBreakerMetrics``: the machine decides, these only count.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from typing import TYPE_CHECKING

from ..state import Bucket

if TYPE_CHECKING:
    from ..conf import BreakerConfig

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

    TALLIES = (
        "failures",
        "ignored",
        "probe_failures",
        "probe_successes",
        "probes",
        "rejections",
        "retries",
        "slow",
        "successes",
    )
    __slots__ = (*TALLIES, "latency")

    def __init__(self) -> None:
        self.successes = Tally()
        self.failures = Tally()
        self.rejections = Tally()
        self.ignored = Tally()
        self.retries = Tally()
        self.probes = Tally()  # probes granted; of successes and failures, these were probes:
        self.probe_successes = Tally()
        self.probe_failures = Tally()
        self.slow = Tally()  # closed calls slower than SLOW_CALL_DURATION
        self.latency = Latencies()

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name).value for name in self.TALLIES}

    def after_fork(self) -> None:
        for name in self.TALLIES:
            getattr(self, name).after_fork()
        self.latency.after_fork()


def tallied(counts: CallCounts) -> Bucket:
    """This process's closed calls so far (cumulative): a window's share is a difference of two.

    Probes are not the window's: their outcomes decide the half-open state.
    """
    failures = counts.failures.value - counts.probe_failures.value
    successes = counts.successes.value - counts.probe_successes.value
    return Bucket(successes + failures, failures, counts.slow.value)


class WindowTally:
    """What one closed decision of this process has told the store's per-second buckets.

    The calls themselves are only counted (``CallCounts``: one counter bump
    each); every ``SYNC_INTERVAL`` the breaker sends the difference since the
    last send and reads the fleet's sum of the last ``WINDOW`` seconds. So a
    call costs no I/O and a process sends at most two writes a second.

    The calls of a send are filed under the second of the send before it:
    a call that arrives when a send is due triggers that send first, so the
    calls counted since ended soon after the previous send (give or take one
    interval and a slow call's own length), and an idle spell does not pull
    old calls into the present. Before the first send, that is when the
    decision began here (``begin``): a decision this process made itself is
    first sent at its next look, which may come after an idle spell.
    """

    __slots__ = ("fleet", "lock", "sent", "sent_at")

    def __init__(self, counts: CallCounts) -> None:
        self.sent = tallied(counts)  # calls before this decision are not its own
        self.sent_at: float | None = None  # when (store clock) the last send was made, or begin
        self.fleet = Bucket()  # the window's sum, every process, as last read
        self.lock = threading.Lock()  # one send at a time

    def begin(self, at: float) -> None:
        """The decision began at ``at`` (store clock): calls counted now are filed from then."""
        self.sent_at = at

    def unsent(self, counts: CallCounts) -> Bucket:
        return tallied(counts) - self.sent

    def estimate(self, counts: CallCounts) -> Bucket:
        """The fleet's window as last read, plus what this process did since (no I/O)."""
        return self.fleet + self.unsent(counts)


def rate_reason(config: BreakerConfig, window: Bucket, *, fleet: bool) -> str | None:
    """Why the window rules open the breaker on ``window``'s figures; None when they do not."""
    calls = window.calls
    if calls < config.minimum_calls or calls <= 0:
        return None
    span = f"over the last {config.window} s {'across the fleet' if fleet else 'in this process'}"
    rules = (
        (config.failure_rate, window.failures, "failure rate", "failed"),
        (config.slow_call_rate, window.slow, "slow calls",
         f"took {config.slow_call_duration:g} s or more"),
    )  # fmt: skip
    for threshold, counted, name, what in rules:
        if threshold is not None and (rate := 100.0 * counted / calls) >= threshold:
            return (
                f"{name} {rate:.0f}% {span} ({counted} of {calls} calls {what}; "
                f"threshold {threshold:g}%)"
            )
    return None
