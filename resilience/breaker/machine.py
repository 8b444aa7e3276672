"""The circuit breaker: CLOSED -> OPEN -> HALF_OPEN -> CLOSED, state in a store.

Use it as a decorator, a context manager (``with``/``async with``), a plain
call (``call``/``call_async``), or through the low-level permit API that a
database backend wraps around its own connect and execute::

    permit = breaker.acquire()          # raises CircuitOpenError when open
    try:
        result = do_the_call()
    except Exception as exc:
        breaker.record_failure(exc, permit)   # the record/ignore rules decide
        raise
    breaker.record_success(permit)

No lock is held around the protected call. The closed path reads one cell
and compares two numbers; everything else (counting failures, telling the
fleet about a success, transitions, probes, events) happens only when a call
fails, a success is due to be told, or the breaker is not closed.

What each state does lives in a small object per state (``ClosedState``,
``DisabledState``, ``OpenState``, ``ForcedOpenState``), as Resilience4j keeps
one class per state; counting lives in counts.py.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from django.utils.module_loading import import_string

from ..clock import Clock, iso_utc
from ..conf import BreakerConfig
from ..errors import CircuitOpenError, Kind, classify, describe, is_connection_error, scrub
from ..logs import log_event
from ..process import identity
from ..signals import call_failed, call_rejected, call_succeeded, state_changed
from ..state import Record, State
from ..stores import BreakerStore, Cell, LocalStore
from .counts import CallCounts, FailureWindow
from .snapshot import BreakerSnapshot, Transition, transitions
from .wrappers import CallStyles

logger = logging.getLogger("resilience.breaker")
_open_error = Exception.__new__  # CircuitOpenError without an __init__ frame (see errors.py)

ExceptionRule = (
    Callable[[BaseException], bool] | type[BaseException] | Iterable[type[BaseException]]
)

_live_breakers: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for breaker in list(_live_breakers):
        breaker.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def this_process() -> str:
    """Who made a decision, as the shared history shows it: "web pid 812@host-1"."""
    return identity().actor


class Outcome(enum.Enum):
    """How a finished call counted."""

    SUCCESS = "success"
    FAILURE = "failure"
    IGNORED = "ignored"


class Probe:
    """The permit of a half-open trial call (closed calls get the ``Record`` itself)."""

    __slots__ = ("rec", "settled", "slot", "window")

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


# what each state does


class ClosedState:
    """Calls go through; failures are counted towards the threshold."""

    @staticmethod
    def admit(breaker: CircuitBreaker, cell: Cell, rec: Record) -> Permit:
        return rec

    @staticmethod
    def failed(breaker: CircuitBreaker, permit: Record, exc: BaseException) -> None:
        breaker._count_failure(permit, exc)


class DisabledState(ClosedState):
    """Forced closed by an operator: calls go through, nothing is counted."""

    @staticmethod
    def failed(breaker: CircuitBreaker, permit: Record, exc: BaseException) -> None:
        return None


class OpenState:
    """Calls are refused until ``open_until``; then a probe per recovery window."""

    @staticmethod
    def admit(breaker: CircuitBreaker, cell: Cell, rec: Record) -> Permit:
        now = breaker._now()
        until: float = rec.open_until  # type: ignore[assignment]
        if now < until:
            raise breaker._rejected(until, "open", now, rec)
        return breaker._probe(cell, rec, now)

    failed = DisabledState.failed  # a stale closed permit's failure: the open decision stands


class ForcedOpenState(OpenState):
    """Forced open by an operator: every call refused, no probes, until reset."""

    @staticmethod
    def admit(breaker: CircuitBreaker, cell: Cell, rec: Record) -> Permit:
        raise breaker._rejected(None, "forced_open", None)


def state_of(rec: Record) -> type[ClosedState] | type[OpenState]:
    if rec.state is State.CLOSED:
        return DisabledState if rec.forced else ClosedState
    return ForcedOpenState if rec.forced else OpenState


# the breaker


def _rule(
    spec: ExceptionRule | None, default: Callable[[BaseException], bool]
) -> Callable[[BaseException], bool]:
    if spec is None:
        return default
    if isinstance(spec, type) and issubclass(spec, BaseException):
        return lambda exc: isinstance(exc, spec)
    if callable(spec):
        return spec
    kinds = tuple(spec)
    return lambda exc: isinstance(exc, kinds)


def _never(exc: BaseException) -> bool:
    return False


class CircuitBreaker(CallStyles):
    """A named breaker. See the module docstring for the ways to use it."""

    __slots__ = (
        "__weakref__",
        "_cell",
        "_counts",
        "_denied",
        "_half_open_uid",
        "_ignore",
        "_last_error",
        "_last_error_type",
        "_last_failure_at",
        "_lock",
        "_mono",
        "_now",
        "_record",
        "_seen",
        "_store",
        "_window",
        "clock",
        "config",
        "name",
    )

    actor: ClassVar[Callable[[], str]] = staticmethod(this_process)

    def __init__(
        self,
        name: str,
        *,
        store: BreakerStore | None = None,
        clock: Clock | None = None,
        record: ExceptionRule | None = None,
        ignore: ExceptionRule | None = None,
        config: BreakerConfig | None = None,
        **settings: Any,
    ) -> None:
        """``settings`` are ``BreakerConfig`` fields (failure_threshold=3, ...); bad ones raise."""
        self.config = config or BreakerConfig(**settings)
        self.name = name
        self._store = store if store is not None else LocalStore(clock=clock)
        self.clock = clock or self._store.clock
        self._record = _rule(record, is_connection_error)
        self._ignore = _rule(ignore, _never)
        self._cell = self._store.cell(name)
        self._now = self._store.now
        self._mono = self._store.clock.monotonic
        rate = self.config.failure_rate_threshold
        self._window = (
            None
            if rate is None
            else FailureWindow(self.config.sliding_window_size, self.config.minimum_calls, rate)
        )
        self._lock = threading.Lock()
        self._seen = self._cell.rec
        self._denied: tuple[str, int] | None = None
        self._half_open_uid: str | None = None
        self._last_error: str | None = None
        self._last_error_type: str | None = None
        self._last_failure_at: float | None = None
        self._counts = CallCounts()
        _live_breakers.add(self)

    @classmethod
    def from_config(
        cls,
        name: str,
        config: Mapping[str, Any],
        *,
        store: BreakerStore,
        clock: Clock | None = None,
    ) -> CircuitBreaker:
        """Build from a ``resilience.conf.breaker_config(name)`` mapping."""
        extra = tuple(import_string(path) for path in config.get("RECORD_EXCEPTIONS") or ())
        ignored = tuple(import_string(path) for path in config.get("IGNORE_EXCEPTIONS") or ())

        def record(exc: BaseException) -> bool:
            return is_connection_error(exc) or (bool(extra) and isinstance(exc, extra))

        return cls(
            name,
            store=store,
            clock=clock,
            record=record,
            ignore=ignored or None,
            config=BreakerConfig.from_settings(config),
        )

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self.public_state}>"

    @property
    def failure_threshold(self) -> int:
        return self.config.failure_threshold

    @property
    def recovery_timeout(self) -> float:
        return self.config.recovery_timeout

    @property
    def half_open_max_calls(self) -> int:
        return self.config.half_open_max_calls

    # the permit API

    def acquire(self) -> Permit:
        """Ask to make one call; raises ``CircuitOpenError`` (and counts it) when refused."""
        cell = self._cell
        rec = cell.rec
        if rec.admits and cell.sync_due > self._mono():
            return rec
        return self._admit(cell)

    def record_success(self, permit: Permit) -> None:
        """The call behind ``permit`` succeeded."""
        self._counts.successes.add()
        if isinstance(permit, Probe):
            self._probe_succeeded(permit)
        else:
            cell = self._cell
            if cell.failures or cell.success_due <= self._mono():
                self._store.note_success(self.name, permit)
            if self._window is not None:
                self._window.record(False)
        if call_succeeded.receivers:
            call_succeeded.emit(self, name=self.name)

    def record_failure(self, exc: BaseException, permit: Permit) -> Outcome:
        """The call behind ``permit`` raised ``exc``; the record/ignore rules decide how it counts.

        Ignored exceptions, calls that never reached the dependency (a
        deadline spent before trying, an inner breaker's refusal) and
        ``BaseException``s such as cancellation count as nothing and give a
        probe permit back; exceptions the breaker does not record (query
        errors) mean the dependency answered: a success.
        """
        if (
            not isinstance(exc, Exception)
            or self._ignore(exc)
            or classify(exc) is Kind.NOT_ATTEMPTED
        ):
            self.release(permit)
            self._counts.ignored.add()
            return Outcome.IGNORED
        if not self._record(exc):
            self.record_success(permit)
            return Outcome.SUCCESS
        self._counts.failures.add()
        self._last_error = scrub(describe(exc))
        self._last_error_type = type(exc).__name__
        self._last_failure_at = self._now()
        if isinstance(permit, Probe):
            self._probe_failed(permit, exc)
        else:
            state_of(self._cell.rec).failed(self, permit, exc)
        if call_failed.receivers:
            call_failed.emit(self, name=self.name, exception=exc)
        return Outcome.FAILURE

    def release(self, permit: Permit) -> None:
        """Give a permit back without an outcome (the call was cancelled or ignored)."""
        if isinstance(permit, Probe) and not permit.settled:
            permit.settled = True
            self._store.release_probe(self.name, permit.rec, permit.window, permit.slot)
            self._denied = None

    def after_fork(self) -> None:
        """Fresh locks in a forked child (another thread may have held one at the fork)."""
        self._lock = threading.Lock()
        self._counts.after_fork()

    def note_retry(self) -> None:
        """Count a retry made on this breaker's behalf (for snapshot counters)."""
        self._counts.retries.add()

    def note_latency(self, seconds: float) -> None:
        """How long a call took, from whoever already timed it (the guard's retry run)."""
        self._counts.latency.observe(seconds)

    @property
    def counts(self) -> CallCounts:
        """This process's cumulative counts (what the fleet reporter publishes)."""
        return self._counts

    @property
    def last_failure(self) -> tuple[str | None, str | None, float | None]:
        """This process's last counted failure: (error, error type, when on the store's clock)."""
        return self._last_error, self._last_error_type, self._last_failure_at

    # state

    @property
    def record(self) -> Record:
        """The decision this process holds now, without refreshing it."""
        return self._cell.rec

    @property
    def state(self) -> State:
        """CLOSED, OPEN or HALF_OPEN (forced states report OPEN / CLOSED; see ``forced``)."""
        self._refresh()
        return self._cell.rec.state_at(self._now())

    @property
    def public_state(self) -> str:
        """``state.value``: "closed", "open" or "half_open", as the JSON envelope says it."""
        return self.state.value

    @property
    def forced(self) -> bool:
        self._refresh()
        return self._cell.rec.forced

    @property
    def store(self) -> BreakerStore:
        return self._store

    def allows_traffic(self) -> bool:
        """Whether a call now could reach the dependency (closed, or half-open for a probe)."""
        return self.state is not State.OPEN

    def snapshot(self, *, history: bool = False) -> BreakerSnapshot:
        """The breaker at a glance; ``history`` adds the shared transitions (a store read)."""
        self._refresh()
        cell = self._cell
        rec = cell.rec
        now = self._now()
        state = rec.state_at(now)
        next_probe_at: float | None = None
        if state is State.OPEN and not rec.forced:
            next_probe_at = rec.open_until
        elif state is State.HALF_OPEN:
            window = rec.probe_window(now)
            denied = self._denied == (rec.uid, window)
            next_probe_at = rec.window_start(window + 1 if denied else window)
        config = self.config
        records = self._store.history(self.name, config.history_size) if history else []
        return BreakerSnapshot(
            name=self.name,
            state=state,
            forced=rec.forced,
            failure_count=cell.failures,
            failure_threshold=config.failure_threshold,
            recovery_timeout=config.recovery_timeout,
            half_open_max_calls=config.half_open_max_calls,
            opened_at=rec.opened_at,
            next_probe_at=next_probe_at,
            last_transition_at=rec.at,
            last_error=self._last_error or rec.error,
            last_error_type=self._last_error_type or rec.error_type,
            last_failure_at=self._last_failure_at,
            failure_rate=None if self._window is None else self._window.rate(),
            counters=self._counts.as_dict(),
            transitions=transitions(records, self.actor())[-config.history_size :],
            store_kind=self._store.kind,
            store_healthy=self._store.healthy,
            epoch=rec.epoch,
            reason=rec.reason,
            taken_at=now,
            actor=rec.actor,
        )

    # manual control

    def force_open(
        self, reason: str = "forced open by an operator", *, actor: str | None = None
    ) -> None:
        """Reject every call until ``reset()`` or ``force_closed()``."""
        self._force(State.OPEN, reason, actor)

    def force_closed(
        self,
        reason: str = "forced closed by an operator: failures not counted",
        *,
        actor: str | None = None,
    ) -> None:
        """Let every call through and count nothing (disabled) until ``reset()``."""
        self._force(State.CLOSED, reason, actor)

    def reset(self, reason: str = "reset by an operator", *, actor: str | None = None) -> None:
        """Closed, failures cleared, backoff forgotten."""
        self._force(State.CLOSED, reason, actor, forced=False)

    def _force(self, state: State, reason: str, actor: str | None, *, forced: bool = True) -> None:
        for _ in range(20):
            self._store.sync(self.name, force=True)
            current = self._cell.rec
            now = self._now()
            new = current.successor(
                state=state,
                forced=forced,
                at=now,
                opened_at=now if state is State.OPEN else None,
                reason=reason,
                manual_at=now,
                actor=actor or self.actor(),
            )
            installed = self._store.transition(self.name, current, new)
            self._notice(installed)
            if installed is not None:
                self._denied = None
                return
        raise RuntimeError(f"breaker {self.name!r}: could not apply a manual transition")

    # internals: admission

    def _refresh(self) -> None:
        if self._cell.sync_due <= self._mono():
            self._store.sync(self.name)
            self._notice(None)

    def _admit(self, cell: Cell) -> Permit:
        self._refresh()
        rec = cell.rec
        return state_of(rec).admit(self, cell, rec)

    def _probe(self, cell: Cell, rec: Record, now: float) -> Permit:
        window = rec.probe_window(now)
        if self._denied == (rec.uid, window):
            raise self._rejected(rec.window_start(window + 1), "half_open", now, rec)
        if self._store.shared:
            # Probing on a stale view would waste the permit: look first.
            self._store.sync(self.name, force=True)
            self._notice(None)
            if cell.rec is not rec:
                return self._admit(cell)
        slot = self._store.acquire_probe(self.name, rec, window, self.config.half_open_max_calls)
        if not slot:
            self._denied = (rec.uid, window)
            raise self._rejected(rec.window_start(window + 1), "half_open", now, rec)
        self._counts.probes.add()
        self._enter_half_open(rec, now)
        return Probe(rec, window, slot)

    def _rejected(
        self, next_probe_at: float | None, reason: str, now: float | None, rec: Record | None = None
    ) -> CircuitOpenError:
        self._counts.rejections.add()
        # What opened it travels with every refusal: staff are told why, not only "open".
        error, kind = (rec.error, rec.error_type) if rec is not None else (None, None)
        error = _open_error(CircuitOpenError, self.name, next_probe_at, now, reason, error, kind)
        if call_rejected.receivers:
            call_rejected.emit(self, name=self.name, error=error)
        return error

    # internals: outcomes

    def _count_failure(self, permit: Record, exc: BaseException) -> None:
        rec = self._cell.rec
        if rec.uid != permit.uid or rec.epoch != permit.epoch:
            return  # the state moved on since this call started
        config = self.config
        threshold = config.failure_threshold
        weight = config.timeout_weight if classify(exc) is Kind.TIMEOUT else 1
        count = self._store.add_failure(self.name, rec, threshold, weight)
        reason = None
        if count >= threshold:
            reason = f"{count} consecutive failures (threshold {threshold}"
            if config.timeout_weight > 1:
                reason += f"; a timeout counts {config.timeout_weight}"
            reason += ")"
        if self._window is not None:
            reason = self._window.record(True) or reason
        if reason is not None:
            self._open(rec, reason, exc, trips=1)

    def _settle_probe(self, probe: Probe) -> Record | None:
        """The record a probe's outcome decides about: None if settled or out of date."""
        if probe.settled:
            return None
        probe.settled = True
        current = self._cell.rec
        return current if current.uid == probe.rec.uid else None

    def _probe_failed(self, probe: Probe, exc: BaseException) -> None:
        current = self._settle_probe(probe)
        if current is not None:
            self._open(current, "probe failed", exc, trips=current.trips + 1)

    def _probe_succeeded(self, probe: Probe) -> None:
        current = self._settle_probe(probe)
        if current is None:
            return
        closed = current.successor(
            state=State.CLOSED, at=self._now(), reason="probe succeeded", actor=self.actor()
        )
        self._notice(self._store.transition(self.name, current, closed))

    def _open(self, prev: Record, reason: str, exc: BaseException, *, trips: int) -> None:
        # Measured from now on this process's view of the store's clock: no
        # earlier open's time is carried over, so one fast host cannot
        # stretch the opens that come after it.
        now = self._now()
        record = prev.successor(
            state=State.OPEN,
            at=now,
            opened_at=now,
            open_until=now + self.config.open_duration(trips),
            trips=trips,
            reason=reason,
            error=self._last_error or scrub(describe(exc)),
            error_type=type(exc).__name__,
            actor=self.actor(),
        )
        self._notice(self._store.transition(self.name, prev, record))

    # internals: events

    def _enter_half_open(self, rec: Record, now: float) -> None:
        with self._lock:
            if self._half_open_uid == rec.uid:
                return
            self._half_open_uid = rec.uid
        self._announce(
            Transition(
                State.OPEN.value, State.HALF_OPEN.value, now, "recovery timeout elapsed: probing"
            ),
            rec,
        )

    def _notice(self, installed: Record | None) -> None:
        """Announce the change from the last record seen to the current one, once."""
        with self._lock:
            rec = self._cell.rec
            seen = self._seen
            if rec is seen:
                return
            self._seen = rec
        if rec.admits and self._window is not None:
            self._window.clear()
        if rec.uid == seen.uid or (rec.initial and seen.state is State.CLOSED and not seen.forced):
            return  # the same decision renumbered, or "closed" again after a lost store
        now = self._now()
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
        self._announce(transition, rec)

    def _announce(self, transition: Transition, rec: Record) -> None:
        # The process that made a change logs it; the others note it at DEBUG,
        # so a fleet of workers writes one WARNING per trip, not one each.
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
            breaker=self.name,
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
                self,
                name=self.name,
                old=State(transition.from_state),
                new=State(transition.to_state),
                reason=transition.reason,
                transition=transition,
            )
