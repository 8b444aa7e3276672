"""What the admin page, the metrics and the health checks read about one breaker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..clock import iso_utc
from ..state import Record, State


def utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of state, read from the shared history: when, why, and who made it."""

    from_state: str
    to_state: str
    at: float
    reason: str
    forced: bool = False
    observed: bool = False  # made by another process than the one reporting
    actor: str = ""

    @property
    def at_dt(self) -> datetime | None:
        return utc(self.at)

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.from_state,
            "to": self.to_state,
            "at": iso_utc(self.at),
            "reason": self.reason,
            "forced": self.forced,
            "observed": self.observed,
            "actor": self.actor,
        }


def transitions(records: list[Record], me: str) -> tuple[Transition, ...]:
    """The history as transitions, with the half-open step each probe implies."""
    found: list[Transition] = []
    before = State.CLOSED
    for previous, rec in zip([None, *records], records, strict=False):
        probed = (
            previous is not None
            and previous.state is State.OPEN
            and not previous.forced
            and rec.reason.startswith("probe")
            and previous.open_until is not None
        )
        if probed:
            found.append(
                Transition(
                    State.OPEN.value,
                    State.HALF_OPEN.value,
                    previous.open_until,  # type: ignore[union-attr, arg-type]
                    "recovery timeout elapsed: probing",
                    actor=rec.actor,
                    observed=rec.actor != me,
                )
            )
            before = State.HALF_OPEN
        found.append(
            Transition(
                before.value,
                rec.state.value,
                rec.at or 0.0,
                rec.reason,
                rec.forced,
                observed=rec.actor != me,
                actor=rec.actor,
            )
        )
        before = rec.state
    return tuple(found)


@dataclass(frozen=True)
class BreakerSnapshot:
    """Everything the admin page, metrics and health checks show about one breaker."""

    name: str
    state: State
    forced: bool
    failure_count: int
    failure_threshold: int
    recovery_timeout: float
    half_open_max_calls: int
    opened_at: float | None
    next_probe_at: float | None
    last_transition_at: float | None
    last_error: str | None
    last_error_type: str | None
    last_failure_at: float | None
    failure_rate: float | None  # percent over this process's window, if that rule is on
    counters: Mapping[str, int]
    transitions: tuple[Transition, ...]
    store_kind: str
    store_healthy: bool
    epoch: int
    reason: str = ""
    taken_at: float = field(default=0.0)
    actor: str = ""  # who made the current decision

    @property
    def public_state(self) -> str:
        return self.state.value

    @property
    def opened_at_dt(self) -> datetime | None:
        return utc(self.opened_at)

    @property
    def next_probe_at_dt(self) -> datetime | None:
        return utc(self.next_probe_at)

    @property
    def last_transition_at_dt(self) -> datetime | None:
        return utc(self.last_transition_at)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (times as ISO-8601 UTC)."""
        return {
            "name": self.name,
            "state": self.state.value,
            "forced": self.forced,
            "failure_count": self.failure_count,
            "failure_threshold": self.failure_threshold,
            "recovery_timeout": self.recovery_timeout,
            "half_open_max_calls": self.half_open_max_calls,
            "opened_at": iso_utc(self.opened_at),
            "next_probe_at": iso_utc(self.next_probe_at),
            "last_transition_at": iso_utc(self.last_transition_at),
            "last_error": self.last_error,
            "last_error_type": self.last_error_type,
            "last_failure_at": iso_utc(self.last_failure_at),
            "failure_rate": self.failure_rate,
            "counters": dict(self.counters),
            "transitions": [t.as_dict() for t in self.transitions],
            "store": self.store_kind,
            "store_healthy": self.store_healthy,
            "reason": self.reason,
            "actor": self.actor,
        }
