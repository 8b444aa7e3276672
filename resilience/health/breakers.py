"""The breakers' state as a health check: closed is healthy."""

from __future__ import annotations

import dataclasses
from typing import Any

from health_check import HealthCheck

from ..registry import all_breakers, get_breaker
from .messages import iso_or_unknown, one_line, unavailable


def describe_breaker(breaker: Any, now: float | None = None) -> str:
    """One line on a breaker that is not closed: state, since when, why, next probe."""
    snap = breaker.snapshot()
    now = breaker.store.now() if now is None else now
    state = str(breaker.public_state)
    parts = [f"circuit breaker {snap.name!r} is {state.replace('_', '-')}"]
    if snap.forced:
        parts[0] += " (forced)"
    if snap.opened_at:
        parts.append(f"opened at {iso_or_unknown(snap.opened_at)}")
    if snap.last_error:
        parts.append(f"last error: {snap.last_error}")
    if snap.next_probe_at is not None and snap.next_probe_at > now:
        wait = snap.next_probe_at - now
        parts.append(f"next probe at {iso_or_unknown(snap.next_probe_at)} (in {wait:.0f} s)")
    elif snap.next_probe_at is not None:
        parts.append("a probe may go through now")
    elif snap.forced:
        parts.append("no probe until it is reset")
    return one_line("; ".join(parts))


@dataclasses.dataclass
class BreakerState(HealthCheck):
    """A breaker's state (or every breaker's, when no name is given): closed is healthy.

    Reads the breaker's store only; never calls the dependency.
    """

    name: str | None = None

    def __repr__(self) -> str:
        """``BreakerState(name='payments')``, or ``BreakerState(all breakers)``."""
        return f"BreakerState(name={self.name!r})" if self.name else "BreakerState(all breakers)"

    def run(self) -> None:
        breakers = [get_breaker(self.name)] if self.name else list(all_breakers())
        problems = [describe_breaker(b) for b in breakers if str(b.public_state) != "closed"]
        if problems:
            raise unavailable(" | ".join(problems))
