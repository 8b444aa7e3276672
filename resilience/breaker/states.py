"""What each state does, with the data it keeps, and the permits it hands out.

As Resilience4j keeps one small class per state: ``ClosedState`` lets calls
through and counts them; ``DisabledState`` (forced closed) lets them through
and counts nothing; ``OpenState`` refuses until the recovery timeout, then
hands out probes; ``ForcedOpenState`` refuses, full stop.

A state object belongs to one decision (a ``Record``) in this process and
holds what this process knows about it that the record does not: the open
state remembers the recovery window in which this process was refused a
probe (so it does not ask the store again in that window), the closed state
what it has already told the store of its calls (``counts.WindowTally``).
A new decision gets a new state object, so that data is never stale.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from ..state import Bucket, Record, State
from .counts import CallCounts, WindowTally, rate_reason, tallied

if TYPE_CHECKING:
    from ..stores import Cell
    from .machine import CircuitBreaker


class Outcome(enum.Enum):
    """How a finished call counted."""

    SUCCESS = "success"
    FAILURE = "failure"
    IGNORED = "ignored"


class Probe:
    """The permit of a half-open trial call (closed calls get the ``Record`` itself)."""

    __slots__ = ("rec", "settled", "slot", "window")
    admits = False  # not a closed permit: its outcome decides about the open

    def __init__(self, rec: Record, window: int, slot: int) -> None:
        self.rec = rec
        self.window = window
        self.slot = slot
        self.settled = False

    @property
    def epoch(self) -> int:
        return self.rec.epoch

    def __repr__(self) -> str:
        return f"Probe(epoch={self.rec.epoch}, window={self.window}, slot={self.slot})"


Permit = Record | Probe


class ClosedState:
    """Calls go through; failures (and, with the window rules, every call) are counted."""

    __slots__ = ("rec", "window")

    def __init__(self, rec: Record, counts: CallCounts) -> None:
        self.rec = rec
        self.window = WindowTally(counts)  # what this process told the store of its calls

    def admit(self, breaker: CircuitBreaker, cell: Cell) -> Permit:
        return self.rec

    def failed(self, breaker: CircuitBreaker, permit: Record, exc: BaseException) -> None:
        breaker._count_failure(self, permit, exc)

    def slow(self, breaker: CircuitBreaker, *, send: bool = False) -> None:
        """A slow call, or (``send``) time for a look at the window: check the window rules."""
        self.check(breaker, send=send)

    def check(self, breaker: CircuitBreaker, *, send: bool = False) -> None:
        """Open on the window rules; without ``send``, only if the figures so far say so.

        The store is read only when its last figures plus this process's
        calls since cross a threshold: then the decision is taken on fresh
        figures, every process's.
        """
        config, shared = breaker.config, breaker.store.shared
        if (
            not send
            and rate_reason(config, self.window.estimate(breaker.counts), fleet=shared) is None
        ):
            return
        window = self.send(breaker)
        reason = None if window is None else rate_reason(config, window, fleet=shared)
        if reason is not None:
            breaker._open(self.rec, reason, trips=1)

    def send(self, breaker: CircuitBreaker) -> Bucket | None:
        """Send this process's calls since the last send; the fleet's window (None: busy)."""
        tally = self.window
        if not tally.lock.acquire(blocking=False):
            return None
        try:
            counted, now = tallied(breaker.counts), breaker._now()
            since = now if tally.sent_at is None else tally.sent_at
            delta, window = counted - tally.sent, breaker.config.window
            tally.fleet = breaker.store.tally(
                breaker.name, self.rec, int(since), delta, window, int(now)
            )
            tally.sent, tally.sent_at = counted, now
            return tally.fleet
        finally:
            tally.lock.release()


class DisabledState(ClosedState):
    """Forced closed by an operator: calls go through, nothing is counted."""

    __slots__ = ()

    def failed(self, breaker: CircuitBreaker, permit: Record, exc: BaseException) -> None:
        return None

    def slow(self, breaker: CircuitBreaker, *, send: bool = False) -> None:
        return None


class OpenState:
    """Calls are refused until ``open_until``; then probes, a few per recovery window."""

    __slots__ = ("denied", "rec")

    def __init__(self, rec: Record, counts: CallCounts) -> None:
        self.rec = rec
        self.denied: int | None = None  # the window in which the store refused us a probe

    def admit(self, breaker: CircuitBreaker, cell: Cell) -> Permit:
        rec = self.rec
        now = breaker._now()
        until: float = rec.open_until  # type: ignore[assignment]
        if now < until:
            raise breaker._rejected(until, "open", now, rec)
        window = rec.probe_window(now)
        if self.denied == window:
            raise breaker._rejected(rec.window_start(window + 1), "half_open", now, rec)
        store = breaker.store
        if store.shared:
            # Probing on a stale view would waste the permit: look first.
            store.sync(breaker.name, force=True)
            breaker._events.notice(breaker, None)
            if cell.rec is not rec:
                return breaker._admit()
        slot = store.acquire_probe(breaker.name, rec, window, breaker.config.half_open_max_calls)
        if not slot:
            self.denied = window
            raise breaker._rejected(rec.window_start(window + 1), "half_open", now, rec)
        breaker.counts.probes.add()
        breaker._events.entered_half_open(breaker, rec, now)
        return Probe(rec, window, slot)

    def failed(self, breaker: CircuitBreaker, permit: Record, exc: BaseException) -> None:
        return None  # a stale closed permit's failure: the open decision stands

    slow = DisabledState.slow

    @staticmethod
    def probe_failed(breaker: CircuitBreaker, probe: Probe, exc: BaseException) -> None:
        """Any failure in half-open opens it again, for longer (backoff)."""
        current = _settle(breaker, probe)
        if current is not None:
            breaker._open(current, "probe failed", trips=current.trips + 1, exc=exc)

    @staticmethod
    def probe_succeeded(breaker: CircuitBreaker, probe: Probe) -> None:
        """``SUCCESS_THRESHOLD`` successful probes, fleet-wide, close it."""
        current = _settle(breaker, probe)
        if current is None:
            return
        needed = breaker.config.success_threshold
        succeeded = 1 if needed == 1 else breaker.store.probe_succeeded(breaker.name, current)
        if succeeded < needed:
            return  # half-open still: the next probes decide
        reason = "probe succeeded" if needed == 1 else f"{succeeded} probes succeeded"
        closed = current.successor(
            state=State.CLOSED, at=breaker._now(), reason=reason, actor=breaker.actor()
        )
        installed = breaker.store.transition(breaker.name, current, closed)
        breaker._events.notice(breaker, installed)

    def next_probe_at(self, now: float) -> float | None:
        rec = self.rec
        if rec.state_at(now) is State.OPEN:
            return rec.open_until
        window = rec.probe_window(now)
        return rec.window_start(window + 1 if self.denied == window else window)


class ForcedOpenState(OpenState):
    """Forced open by an operator: every call refused, no probes, until reset."""

    __slots__ = ()

    def admit(self, breaker: CircuitBreaker, cell: Cell) -> Permit:
        raise breaker._rejected(None, "forced_open", None, self.rec)

    def next_probe_at(self, now: float) -> float | None:
        return None


BreakerState = ClosedState | OpenState


def _settle(breaker: CircuitBreaker, probe: Probe) -> Record | None:
    """The decision a probe's outcome is about: None if settled already or out of date."""
    if probe.settled:
        return None
    probe.settled = True
    current = breaker.record
    return current if current.uid == probe.rec.uid else None


def state_class(rec: Record) -> type[ClosedState] | type[OpenState]:
    if rec.state is State.CLOSED:
        return DisabledState if rec.forced else ClosedState
    return ForcedOpenState if rec.forced else OpenState
