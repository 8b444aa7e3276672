"""The circuit breaker: CLOSED -> OPEN -> HALF_OPEN -> CLOSED, state in a store.

Use it as a decorator, a context manager (``with``/``async with``), a plain
call (``call``/``call_async``), or through the low-level permit API that a
database backend wraps around its own connect and execute::

    permit = breaker.acquire()          # raises CircuitOpenError when open
    try:
        result = do_the_call()
    except Exception as exc:
        breaker.record_failure(exc, permit, seconds=took)   # RECORD/IGNORE decide
        raise
    breaker.record_success(permit, seconds=took)            # seconds: for slow calls

No lock is held around the protected call. The closed path reads one cell
and compares two numbers; everything else (counting failures, telling the
fleet about a success, the window rules, transitions, probes, events)
happens only when a call fails or is slow, a success is due to be told, the
store is due a look, or the breaker is not closed.

Three rules open it, each of which can be off: ``FAILURE_THRESHOLD``
consecutive failures, and over the last ``WINDOW`` seconds a
``FAILURE_RATE`` or a ``SLOW_CALL_RATE``, all counted across every process
that shares the store. What each state does lives in states.py, counting
in counts.py, announcing in events.py, manual control in control.py, the
snapshot in snapshot.py and the ways to wrap a call in wrappers.py.
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

from ..clock import Clock
from ..conf import BreakerConfig
from ..errors import CircuitOpenError, Kind, classify, describe, scrub
from ..process import identity
from ..signals import call_failed, call_ignored, call_rejected, call_succeeded
from ..state import Record, State
from ..stores import BreakerStore, LocalStore
from .control import ManualControl
from .counts import CallCounts
from .events import Events
from .snapshot import BreakerSnapshot, snapshot_of
from .states import BreakerState, ClosedState, OpenState, Outcome, Permit, Probe, state_class
from .wrappers import CallStyles

_open_error = Exception.__new__  # CircuitOpenError without an __init__ frame (see errors.py)
TICK = 0.5  # seconds between looks at the window when the store itself never asks for one

_live_breakers: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for breaker in list(_live_breakers):
        breaker.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def this_process() -> str:
    """Who made a decision, as the shared history shows it: "web pid 812@host-1"."""
    return identity().actor


class CircuitBreaker(ManualControl, CallStyles):
    """A named breaker. See the module docstring for the ways to use it."""

    __slots__ = (
        "__weakref__",
        "_cell",
        "_counts",
        "_events",
        "_last_error",
        "_last_error_type",
        "_last_failure_at",
        "_mono",
        "_now",
        "_slow_after",
        "_state",
        "_store",
        "_succeeded",
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
        config: BreakerConfig | None = None,
        **settings: Any,
    ) -> None:
        """``settings`` are ``BreakerConfig`` fields (failure_threshold=3, record=[...], ...)."""
        self.name = name
        self._store = store if store is not None else LocalStore(clock=clock)
        self.clock = clock or self._store.clock
        self._cell = self._store.cell(name)
        self._now = self._store.now
        self._mono = self._store.clock.monotonic
        self._counts = CallCounts()
        self._succeeded = self._counts.successes.add  # the closed path's one counter bump
        self._events = Events(self._cell.rec)
        self._state: BreakerState = state_class(self._cell.rec)(self._cell.rec, self._counts)
        self._last_error: str | None = None
        self._last_error_type: str | None = None
        self._last_failure_at: float | None = None
        self.configure(config or BreakerConfig(**settings))
        _live_breakers.add(self)

    def configure(self, config: BreakerConfig) -> None:
        """Take new settings (the registry builds a new breaker instead; pybreaker's setters)."""
        self.config = config
        self._slow_after = config.slow_call_duration if config.slow_call_rate else None
        cell = self._cell
        if config.windowed:  # the window needs a look now and then, whatever the store
            cell.sync_due = min(cell.sync_due, self._mono())
        if config.failure_threshold is None:
            cell.success_due = math.inf  # no run of failures to end: successes need no telling
        elif math.isinf(cell.success_due) and self._store.shared:
            cell.success_due = -math.inf

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self.state.value}>"

    @property
    def failure_threshold(self) -> int | None:
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
        return self._admit()

    def record_success(self, permit: Permit, seconds: float | None = None) -> None:
        """The call behind ``permit`` succeeded (in ``seconds``, for the slow-call rule)."""
        self._succeeded()
        if isinstance(permit, Probe):
            self._counts.probe_successes.add()
            OpenState.probe_succeeded(self, permit)
        else:
            cell = self._cell
            if cell.failures or cell.alert or cell.success_due <= self._mono():
                self._store.note_success(self.name, permit)
            if self._slow(seconds):
                self._current().slow(self)
        if call_succeeded.receivers:
            call_succeeded.emit(self, name=self.name)

    def record_failure(
        self, exc: BaseException, permit: Permit, seconds: float | None = None
    ) -> Outcome:
        """The call behind ``permit`` raised ``exc``; RECORD and IGNORE decide how it counts.

        Ignored exceptions, calls that never reached the dependency (a
        deadline spent before trying, an inner breaker's refusal) and
        ``BaseException``s such as cancellation count as nothing and give a
        probe permit back; exceptions the breaker does not record (query
        errors) mean the dependency answered: a success.
        """
        config = self.config
        if (
            not isinstance(exc, Exception)
            or config.ignores(exc)
            or classify(exc) is Kind.NOT_ATTEMPTED
        ):
            self.release(permit)
            self._counts.ignored.add()
            if call_ignored.receivers:
                call_ignored.emit(self, name=self.name, exception=exc)
            return Outcome.IGNORED
        if not config.counts(exc):
            self.record_success(permit, seconds)
            return Outcome.SUCCESS
        self._counts.failures.add()
        self._last_error = scrub(describe(exc))
        self._last_error_type = type(exc).__name__
        self._last_failure_at = self._now()
        if isinstance(permit, Probe):
            self._counts.probe_failures.add()
            OpenState.probe_failed(self, permit, exc)
        else:
            self._slow(seconds)
            self._current().failed(self, permit, exc)
        if call_failed.receivers:
            call_failed.emit(self, name=self.name, exception=exc)
        return Outcome.FAILURE

    def release(self, permit: Permit) -> None:
        """Give a permit back without an outcome (the call was cancelled or ignored)."""
        if isinstance(permit, Probe) and not permit.settled:
            permit.settled = True
            self._store.release_probe(self.name, permit.rec, permit.window, permit.slot)
            state = self._current()
            if isinstance(state, OpenState):
                state.denied = None

    def after_fork(self) -> None:
        """Fresh locks in a forked child (another thread may have held one at the fork)."""
        self._events.after_fork()
        self._counts.after_fork()
        if isinstance(self._state, ClosedState):
            self._state.window.lock = threading.Lock()

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
        state = self._current()
        if isinstance(state, ClosedState) and self.config.windowed:
            state.send(self)
        return snapshot_of(self, state, history=history)

    # internals: admission

    def _current(self) -> BreakerState:
        """The state object of the decision held now (a new one for a new decision)."""
        rec = self._cell.rec
        state = self._state
        if state.rec is not rec:
            if state.rec.uid == rec.uid and type(state) is state_class(rec):
                state.rec = rec  # the same decision, renumbered or moved onto the store's clock
            else:
                state = self._state = state_class(rec)(rec, self._counts)
                if type(state) is ClosedState and self.config.windowed:
                    state.window.begin(self._now())
        return state

    def _refresh(self) -> None:
        cell = self._cell
        now = self._mono()
        if cell.sync_due > now:
            return
        self._store.sync(self.name)
        self._events.notice(self, None)
        if self.config.windowed:  # a look at the window every TICK, or as often as the store's
            interval = self._store.sync_interval
            cell.sync_due = now + (TICK if interval is None else min(interval, TICK))
            self._current().slow(self, send=True)

    def _admit(self) -> Permit:
        self._refresh()
        return self._current().admit(self, self._cell)

    def _rejected(
        self, next_probe_at: float | None, reason: str, now: float | None, rec: Record | None
    ) -> CircuitOpenError:
        self._counts.rejections.add()
        # What opened it travels with every refusal: staff are told why, not only "open".
        error, kind = (rec.error, rec.error_type) if rec is not None else (None, None)
        error = _open_error(CircuitOpenError, self.name, next_probe_at, now, reason, error, kind)
        if call_rejected.receivers:
            call_rejected.emit(self, name=self.name, error=error)
        return error

    # internals: outcomes

    def _slow(self, seconds: float | None) -> bool:
        slow = self._slow_after is not None and seconds is not None and seconds >= self._slow_after
        if slow:
            self._counts.slow.add()
        return slow

    def _count_failure(self, state: ClosedState, permit: Record, exc: BaseException) -> None:
        rec = state.rec
        if rec.uid != permit.uid or rec.epoch != permit.epoch:
            return  # the state moved on since this call started
        config = self.config
        threshold = config.failure_threshold
        if threshold is not None:
            weight = config.timeout_weight if classify(exc) is Kind.TIMEOUT else 1
            count = self._store.add_failure(self.name, rec, threshold, weight)
            if count >= threshold:
                reason = f"{count} consecutive failures (threshold {threshold}"
                if config.timeout_weight > 1:
                    reason += f"; a timeout counts {config.timeout_weight}"
                self._open(rec, reason + ")", trips=1)
                return
        if config.windowed:
            state.check(self)

    def _open(
        self, prev: Record, reason: str, *, trips: int, exc: BaseException | None = None
    ) -> None:
        # Measured from now on this process's view of the store's clock: no
        # earlier open's time is carried over, so one fast host cannot
        # stretch the opens that come after it.
        now = self._now()
        error, error_type = self._last_error, self._last_error_type
        if exc is not None:
            error, error_type = error or scrub(describe(exc)), type(exc).__name__
        record = prev.successor(
            state=State.OPEN,
            at=now,
            opened_at=now,
            open_until=now + self.config.open_duration(trips),
            trips=trips,
            reason=reason,
            error=error,
            error_type=error_type,
            actor=self.actor(),
        )
        self._events.notice(self, self._store.transition(self.name, prev, record))
