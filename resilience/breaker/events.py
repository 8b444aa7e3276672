"""Telling the world about state changes: one log line and one signal per change, once.

A change reaches a process in two ways: it made the decision, or it saw
another process's decision in the shared store. Both are announced, so
listeners in every process hear of every change, but only the process
that made a change logs it above DEBUG: a fleet of workers writes one
WARNING per trip, not one each.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from ..clock import iso_utc
from ..logs import log_event
from ..signals import state_changed
from ..state import Record, State
from .snapshot import Transition

if TYPE_CHECKING:
    from .machine import CircuitBreaker

logger = logging.getLogger("resilience.breaker")


class Events:
    """What one breaker has announced: the last decision seen, the open it probes."""

    __slots__ = ("_half_open_uid", "_lock", "seen")

    def __init__(self, seen: Record) -> None:
        self.seen = seen  # the last decision announced (or the first one held)
        self._half_open_uid: str | None = None  # the open decision this process probed
        self._lock = threading.Lock()

    def after_fork(self) -> None:
        self._lock = threading.Lock()

    def notice(self, breaker: CircuitBreaker, installed: Record | None) -> None:
        """Announce the change from the last decision seen to the current one, once.

        ``installed`` is the record this process just wrote, if any: a change
        it did not write was seen in the shared store.
        """
        with self._lock:
            rec = breaker.record
            seen = self.seen
            if rec is seen:
                return
            self.seen = rec
        breaker._current()  # the new decision's state object, before any call is counted in it
        if rec.uid == seen.uid or (rec.initial and seen.state is State.CLOSED and not seen.forced):
            return  # the same decision renumbered, or "closed" again after a lost store
        now = breaker._now()
        from_state = seen.state_at(now)
        if seen.state is State.OPEN and self._half_open_uid == seen.uid:
            from_state = State.HALF_OPEN
        observed = rec is not installed
        reason = rec.reason + (" (seen in the shared store)" if observed else "")
        transition = Transition(
            from_state.value,
            rec.state_at(now).value,
            rec.at or now,
            reason,
            rec.forced,
            observed,
            rec.actor,
        )
        announce(breaker, transition, rec)

    def entered_half_open(self, breaker: CircuitBreaker, rec: Record, now: float) -> None:
        """This process took a probe of ``rec``: open -> half-open, announced once per open."""
        with self._lock:
            if self._half_open_uid == rec.uid:
                return
            self._half_open_uid = rec.uid
        transition = Transition(
            State.OPEN.value, State.HALF_OPEN.value, now, "recovery timeout elapsed: probing"
        )
        announce(breaker, transition, rec)


def announce(breaker: CircuitBreaker, transition: Transition, rec: Record) -> None:
    """The log line and the ``state_changed`` signal of one transition."""
    if transition.observed:
        level = logging.DEBUG
    elif transition.to_state == State.OPEN.value:
        level = logging.WARNING
    else:
        level = logging.INFO
    log_event(
        logger,
        level,
        "resilience.state_changed",
        breaker=breaker.name,
        **{"from": transition.from_state, "to": transition.to_state},
        reason=transition.reason,
        forced=transition.forced,
        observed=transition.observed,
        actor=rec.actor,
        opened_at=iso_utc(rec.opened_at),
        next_probe_at=iso_utc(rec.open_until) if rec.state is State.OPEN else None,
        error=rec.error,
        error_type=rec.error_type,
    )
    if state_changed.receivers:
        state_changed.emit(
            breaker,
            name=breaker.name,
            old=State(transition.from_state),
            new=State(transition.to_state),
            reason=transition.reason,
            transition=transition,
        )
