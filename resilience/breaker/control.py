"""Manual control: what an operator (the breaker page, ``manage.py breaker``) or code decides.

Forced states hold until a reset, in every process sharing the store:
``force_open`` refuses every call, ``force_closed`` lets every call through
and counts nothing. ``open`` and ``half_open`` are the timed states the
breaker reaches by itself, decided by hand (pybreaker's ``open()`` and
``half_open()``): an ``open`` lasts ``RECOVERY_TIMEOUT``, then probes decide;
``half_open`` lets the probes through now. Each is a decision like any
other, with the operator's mark (``manual_at``) so that it outranks
automatic decisions made without knowing it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..state import Record, State

if TYPE_CHECKING:
    from .machine import CircuitBreaker

ATTEMPTS = 20  # decisions raced and lost before giving up


class ManualControl:
    """Mixed into ``CircuitBreaker``."""

    __slots__ = ()

    def force_open(
        self: CircuitBreaker,
        reason: str = "forced open by an operator",
        *,
        actor: str | None = None,
    ) -> None:
        """Reject every call until ``reset()`` or ``force_closed()``."""
        self._decide(reason, actor, state=State.OPEN, forced=True, opened=True)

    def force_closed(
        self: CircuitBreaker,
        reason: str = "forced closed by an operator: failures not counted",
        *,
        actor: str | None = None,
    ) -> None:
        """Let every call through and count nothing (disabled) until ``reset()``."""
        self._decide(reason, actor, state=State.CLOSED, forced=True)

    def reset(
        self: CircuitBreaker, reason: str = "reset by an operator", *, actor: str | None = None
    ) -> None:
        """Closed, failures cleared, backoff forgotten."""
        self._decide(reason, actor, state=State.CLOSED)

    def open(
        self: CircuitBreaker, reason: str = "opened by an operator", *, actor: str | None = None
    ) -> None:
        """Open for ``RECOVERY_TIMEOUT``, then probe, as if it had tripped."""
        duration = self.config.open_duration(1)
        self._decide(reason, actor, state=State.OPEN, opened=True, lasts=duration, trips=1)

    def half_open(
        self: CircuitBreaker,
        reason: str = "half-opened by an operator: probing",
        *,
        actor: str | None = None,
    ) -> None:
        """Let the probes through now: ``SUCCESS_THRESHOLD`` successes close, a failure opens."""
        self._decide(reason, actor, state=State.OPEN, opened=True, lasts=0.0, keep_trips=True)

    def _decide(
        self: CircuitBreaker,
        reason: str,
        actor: str | None,
        *,
        state: State,
        forced: bool = False,
        opened: bool = False,
        lasts: float | None = None,
        trips: int = 0,
        keep_trips: bool = False,
    ) -> Record:
        """Install the decision on top of the store's latest; a lost race is tried again."""
        for _ in range(ATTEMPTS):
            self._store.sync(self.name, force=True)
            current = self._cell.rec
            now = self._now()
            fields: dict[str, Any] = {
                "state": state,
                "forced": forced,
                "at": now,
                "reason": reason,
                "manual_at": now,
                "actor": actor or self.actor(),
            }
            if opened:
                fields["opened_at"] = now
                fields["open_until"] = None if lasts is None else now + lasts
                fields["trips"] = max(1, current.trips) if keep_trips else trips
            installed = self._store.transition(self.name, current, current.successor(**fields))
            self._events.notice(self, installed)
            if installed is not None:
                return installed
        raise RuntimeError(f"breaker {self.name!r}: could not apply a manual transition")
