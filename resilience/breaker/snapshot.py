"""What the admin page, the metrics and the health checks read about one breaker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..clock import iso_utc
from ..state import Record, State

if TYPE_CHECKING:
    from .machine import CircuitBreaker
    from .states import BreakerState


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
    failure_threshold: int | None  # None: the consecutive rule is off
    recovery_timeout: float
    half_open_max_calls: int
    opened_at: float | None
    next_probe_at: float | None
    last_transition_at: float | None
    last_error: str | None
    last_error_type: str | None
    last_failure_at: float | None
    failure_rate: float | None  # percent of the window's calls (fleet-wide); None: no calls
    counters: Mapping[str, int]
    transitions: tuple[Transition, ...]
    store_kind: str
    store_healthy: bool
    epoch: int
    reason: str = ""
    taken_at: float = field(default=0.0)
    actor: str = ""  # who made the current decision
    # The window rules (None when off) and the window's figures, fleet-wide when shared.
    failure_rate_threshold: float | None = None
    slow_call_rate_threshold: float | None = None
    slow_call_duration: float = 0.0
    window: int = 0  # seconds
    minimum_calls: int = 0
    window_calls: int = 0
    window_failures: int = 0
    window_slow: int = 0
    slow_call_rate: float | None = None  # percent of the window's calls
    # Half-open: the probes of the current recovery window, and the successes so far.
    success_threshold: int = 1
    probes_taken: int = 0
    probe_successes: int = 0

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
            "window": {
                "seconds": self.window,
                "minimum_calls": self.minimum_calls,
                "calls": self.window_calls,
                "failures": self.window_failures,
                "slow": self.window_slow,
                "failure_rate": self.failure_rate,
                "failure_rate_threshold": self.failure_rate_threshold,
                "slow_call_rate": self.slow_call_rate,
                "slow_call_rate_threshold": self.slow_call_rate_threshold,
                "slow_call_duration": self.slow_call_duration,
            },
            "half_open": {
                "max_calls": self.half_open_max_calls,
                "success_threshold": self.success_threshold,
                "probes_taken": self.probes_taken,
                "probe_successes": self.probe_successes,
            },
        }


def _percent(part: int, whole: int) -> float | None:
    return None if not whole else round(100.0 * part / whole, 1)


def snapshot_of(breaker: CircuitBreaker, state: BreakerState, *, history: bool) -> BreakerSnapshot:
    """Read one breaker for the page, the metrics and the health checks (see ``snapshot``)."""
    from .states import ClosedState, OpenState

    cell = breaker._cell
    rec = cell.rec
    now = breaker._now()
    config = breaker.config
    public = rec.state_at(now)
    next_probe_at = state.next_probe_at(now) if isinstance(state, OpenState) else None
    store = breaker.store
    probes = successes = 0
    if public is State.HALF_OPEN and isinstance(state, OpenState):
        window = rec.probe_window(now)
        probes, successes = store.probe_progress(
            breaker.name, rec, window, config.half_open_max_calls
        )
    figures = state.window.estimate(breaker.counts) if isinstance(state, ClosedState) else None
    calls, failures, slow = figures if figures is not None else (0, 0, 0)
    records = store.history(breaker.name, config.history_size) if history else []
    error, error_type, failed_at = breaker.last_failure
    return BreakerSnapshot(
        name=breaker.name,
        state=public,
        forced=rec.forced,
        failure_count=cell.failures,
        failure_threshold=config.failure_threshold,
        recovery_timeout=config.recovery_timeout,
        half_open_max_calls=config.half_open_max_calls,
        opened_at=rec.opened_at,
        next_probe_at=next_probe_at,
        last_transition_at=rec.at,
        last_error=error or rec.error,
        last_error_type=error_type or rec.error_type,
        last_failure_at=failed_at,
        failure_rate=_percent(failures, calls),
        counters=breaker.counts.as_dict(),
        transitions=transitions(records, breaker.actor())[-config.history_size :],
        store_kind=store.kind,
        store_healthy=store.healthy,
        epoch=rec.epoch,
        reason=rec.reason,
        taken_at=now,
        actor=rec.actor,
        failure_rate_threshold=config.failure_rate,
        slow_call_rate_threshold=config.slow_call_rate,
        slow_call_duration=config.slow_call_duration,
        window=config.window,
        minimum_calls=config.minimum_calls,
        window_calls=calls,
        window_failures=failures,
        window_slow=slow,
        slow_call_rate=_percent(slow, calls),
        success_threshold=config.success_threshold,
        probes_taken=probes,
        probe_successes=successes,
    )
