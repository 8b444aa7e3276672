"""Time, injectable, so the state machine is tested without sleeping.

Two readings on purpose: ``time()`` is the wall clock, because a breaker's
``opened_at`` is shared between processes and hosts and only wall time means
the same thing on all of them; ``monotonic()`` is for durations that never
leave this process (mirror refresh intervals, retry deadlines), where a wall
clock step would do harm.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time as _time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch (wall clock, comparable across hosts)."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``."""

    async def async_sleep(self, seconds: float) -> None:
        """Suspend the current task for ``seconds``."""


class SystemClock:
    """The real clock; its methods are the C builtins, bound once (cheap on the hot path)."""

    __slots__ = ()

    time = staticmethod(_time.time)
    monotonic = staticmethod(_time.monotonic)
    sleep = staticmethod(_time.sleep)

    async def async_sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


class FakeClock:
    """A clock that moves only when told to; ``sleep`` advances it instantly.

    Thread-safe, so threads hammering a breaker can share one.
    """

    __slots__ = ("_lock", "_now", "_origin", "slept")

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._lock = threading.Lock()
        self._origin = start
        self._now = start
        self.slept: list[float] = []  # every sleep asked for, for assertions

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now - self._origin

    def advance(self, seconds: float) -> float:
        """Move time forward and return the new wall time."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        with self._lock:
            self._now += seconds
            return self._now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(time={self._now:.3f})"


# How far two processes' readings of the shared clock may disagree: each offset is
# measured to within half a round trip to Redis, milliseconds, more on a loaded host.
# A copy stored a moment ago by another process may look this much "from the future".
AGREEMENT = 0.25  # seconds


class Timebase:
    """Wall time on a clock every process agrees on: the store's, or this host's if it has none.

    Hosts' clocks disagree, by seconds or by minutes (a VM without NTP, a
    process under faketime), yet one host's records and copies are read on
    another. So the times that cross processes are taken on a reference
    clock (Redis ``TIME``): every ``refresh`` seconds the offset between it
    and this host is measured again, and ``now()`` is the local clock plus
    that offset. Until the first measurement, and without a reference, it
    is the local clock.
    """

    __slots__ = ("_due", "clock", "measured", "offset", "reference", "refresh")

    def __init__(
        self,
        clock: Clock,
        reference: Callable[[], float | None] | None = None,
        refresh: float = 30.0,
    ) -> None:
        self.clock = clock
        self.reference = reference
        self.refresh = refresh
        self.offset = 0.0
        self.measured = reference is None
        self._due = -math.inf

    def now(self) -> float:
        return self.clock.time() + self.offset

    def due(self) -> bool:
        return self.reference is not None and self.clock.monotonic() >= self._due

    def measure(self) -> float:
        """Read the reference (its errors propagate); returns how far the offset moved.

        A reference that answers None has no clock to offer: this host's it is.
        """
        assert self.reference is not None
        best: tuple[float, float] | None = None  # (round trip, offset)
        for _ in range(3):  # the first read may pay for a connection: keep the quickest
            before = self.clock.time()
            reference = self.reference()
            after = self.clock.time()
            if reference is None:
                self.reference = None
                self.measured = True
                return 0.0
            if best is None or after - before < best[0]:
                best = (after - before, reference - (before + after) / 2)
        offset = best[1]
        moved = offset - self.offset
        self.offset = offset
        self.measured = True
        self._due = self.clock.monotonic() + self.refresh
        return moved

    def __repr__(self) -> str:
        return f"Timebase(offset={self.offset:+.3f}, measured={self.measured})"


def iso_utc(timestamp: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC with milliseconds ("2025-01-02T03:04:05.678Z")."""
    if timestamp is None or math.isinf(timestamp):
        return None
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
