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
and compares two numbers; everything else (counting failures, transitions,
probes, events) happens only when a call fails or the breaker is not closed.
"""

from __future__ import annotations

import contextvars
import enum
import functools
import inspect
import itertools
import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from django.utils.module_loading import import_string

from .clock import SYSTEM_CLOCK, Clock, iso_utc
from .conf import DEFAULTS
from .errors import CircuitOpenError, describe, is_connection_error, scrub
from .logs import log_event
from .registry import all_breakers, get_breaker
from .signals import call_failed, call_rejected, call_succeeded, state_changed
from .state import Record, State
from .stores import BreakerStore, LocalStore

__all__ = [
    "BreakerSnapshot",
    "CircuitBreaker",
    "Outcome",
    "Probe",
    "State",
    "Transition",
    "all_breakers",
    "get_breaker",
]

logger = logging.getLogger("resilience.breaker")
_open_error = Exception.__new__  # CircuitOpenError without an __init__ frame (see errors.py)

P = ParamSpec("P")
R = TypeVar("R")
ExceptionRule = (
    Callable[[BaseException], bool] | type[BaseException] | Iterable[type[BaseException]]
)

# Permits held by ``with breaker:`` blocks, per thread / task: (breaker, permit) pairs.
_HELD: contextvars.ContextVar[tuple[tuple[CircuitBreaker, Any], ...]] = contextvars.ContextVar(
    "resilience_held_permits", default=()
)


_live_breakers: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for breaker in list(_live_breakers):
        breaker.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


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


def _utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of state, as this process made or saw it."""

    from_state: str
    to_state: str
    at: float
    reason: str
    forced: bool = False
    observed: bool = False  # made by another process, seen in the shared store

    @property
    def at_dt(self) -> datetime | None:
        return _utc(self.at)

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.from_state,
            "to": self.to_state,
            "at": iso_utc(self.at),
            "reason": self.reason,
            "forced": self.forced,
            "observed": self.observed,
        }


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

    @property
    def public_state(self) -> str:
        return self.state.value

    @property
    def opened_at_dt(self) -> datetime | None:
        return _utc(self.opened_at)

    @property
    def next_probe_at_dt(self) -> datetime | None:
        return _utc(self.next_probe_at)

    @property
    def last_transition_at_dt(self) -> datetime | None:
        return _utc(self.last_transition_at)

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
        }


class _Tally:
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


def decorate(
    fn: Callable[..., Any],
    call: Callable[..., Any],
    call_async: Callable[..., Awaitable[Any]],
) -> Callable[..., Any]:
    """Wrap ``fn`` so each call goes through ``call`` (or ``call_async`` for coroutines)."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return await call_async(fn, *args, **kwargs)

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return call(fn, *args, **kwargs)

    return wrapper


def _rule(
    spec: ExceptionRule | None, default: Callable[[BaseException], bool]
) -> Callable[[BaseException], bool]:
    if spec is None:
        return default
    if isinstance(spec, type) and issubclass(spec, BaseException):
        return lambda exc: isinstance(exc, spec)
    if callable(spec):
        return spec  # type: ignore[return-value]
    types = tuple(spec)
    return lambda exc: isinstance(exc, types)


def _never(exc: BaseException) -> bool:
    return False


class CircuitBreaker:
    """A named breaker. See the module docstring for the ways to use it."""

    __slots__ = (
        "__weakref__",
        "_cell",
        "_denied",
        "_failures",
        "_half_open_epoch",
        "_history",
        "_ignore",
        "_ignored",
        "_last_error",
        "_last_error_type",
        "_last_failure_at",
        "_last_transition_at",
        "_lock",
        "_mono",
        "_now",
        "_probes",
        "_record",
        "_rejections",
        "_retries",
        "_seen",
        "_store",
        "_successes",
        "_window",
        "backoff_multiplier",
        "clock",
        "failure_rate_threshold",
        "failure_threshold",
        "half_open_max_calls",
        "max_recovery_timeout",
        "minimum_calls",
        "name",
        "recovery_timeout",
    )

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        recovery_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        store: BreakerStore | None = None,
        clock: Clock | None = None,
        record: ExceptionRule | None = None,
        ignore: ExceptionRule | None = None,
        failure_rate_threshold: float | None = None,
        sliding_window_size: int = 20,
        minimum_calls: int = 10,
        backoff_multiplier: float = 1.0,
        max_recovery_timeout: float | None = None,
        history_size: int = 20,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, not {failure_threshold}")
        if recovery_timeout <= 0:
            raise ValueError(f"recovery_timeout must be positive, not {recovery_timeout}")
        if half_open_max_calls < 1:
            raise ValueError(f"half_open_max_calls must be at least 1, not {half_open_max_calls}")
        if backoff_multiplier < 1:
            raise ValueError(f"backoff_multiplier must be at least 1, not {backoff_multiplier}")
        if failure_rate_threshold is not None and not 0 < failure_rate_threshold <= 100:
            raise ValueError(
                f"failure_rate_threshold must be in (0, 100], not {failure_rate_threshold}"
            )
        self.name = name
        self.failure_threshold = int(failure_threshold)
        self.recovery_timeout = float(recovery_timeout)
        self.half_open_max_calls = int(half_open_max_calls)
        self.backoff_multiplier = float(backoff_multiplier)
        if max_recovery_timeout is None:  # the settings default, or longer if recovery is
            max_recovery_timeout = max(recovery_timeout, DEFAULTS["MAX_RECOVERY_TIMEOUT"])
        self.max_recovery_timeout = float(max(max_recovery_timeout, recovery_timeout))
        self.failure_rate_threshold = failure_rate_threshold
        self.minimum_calls = max(1, int(minimum_calls))
        self.clock = clock or SYSTEM_CLOCK
        self._store = store if store is not None else LocalStore(clock=self.clock)
        self._record = _rule(record, is_connection_error)
        self._ignore = _rule(ignore, _never)
        self._cell = self._store.cell(name)
        self._now = self.clock.time
        self._mono = self._store.clock.monotonic
        self._window: deque[int] | None = (
            deque(maxlen=max(1, int(sliding_window_size)))
            if failure_rate_threshold is not None
            else None
        )
        self._lock = threading.Lock()
        self._seen = self._cell.rec
        self._denied: tuple[int, int] | None = None
        self._half_open_epoch: int | None = None
        self._history: deque[Transition] = deque(maxlen=max(1, int(history_size)))
        self._last_error: str | None = None
        self._last_error_type: str | None = None
        self._last_failure_at: float | None = None
        self._last_transition_at: float | None = None
        self._successes = _Tally()
        self._failures = _Tally()
        self._rejections = _Tally()
        self._ignored = _Tally()
        self._retries = _Tally()
        self._probes = _Tally()
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
            failure_threshold=config["FAILURE_THRESHOLD"],
            recovery_timeout=config["RECOVERY_TIMEOUT"],
            half_open_max_calls=config["HALF_OPEN_MAX_CALLS"],
            store=store,
            clock=clock,
            record=record,
            ignore=ignored or None,
            failure_rate_threshold=config.get("FAILURE_RATE_THRESHOLD"),
            sliding_window_size=config.get("SLIDING_WINDOW_SIZE", 20),
            minimum_calls=config.get("MINIMUM_CALLS", 10),
            backoff_multiplier=config.get("OPEN_BACKOFF_MULTIPLIER", 1.0),
            max_recovery_timeout=config.get("MAX_RECOVERY_TIMEOUT"),
            history_size=config.get("HISTORY_SIZE", 20),
        )

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self.public_state}>"

    # --- the permit API ---------------------------------------------------------

    def acquire(self) -> Permit:
        """Ask to make one call; raises ``CircuitOpenError`` (and counts it) when refused."""
        cell = self._cell
        rec = cell.rec
        if rec.admits and cell.sync_due > self._mono():
            return rec
        return self._admit(cell)

    def record_success(self, permit: Permit) -> None:
        """The call behind ``permit`` succeeded."""
        self._successes.add()
        if permit.__class__ is Record:
            if self._cell.failures:
                self._clear_failures(permit)  # type: ignore[arg-type]
            if self._window is not None:
                self._window.append(0)
        else:
            self._probe_succeeded(permit)  # type: ignore[arg-type]
        if call_succeeded.receivers:
            call_succeeded.send(sender=self, name=self.name)

    def record_failure(self, exc: BaseException, permit: Permit) -> Outcome:
        """The call behind ``permit`` raised ``exc``; the record/ignore rules decide how it counts.

        Ignored exceptions (and ``BaseException``s such as cancellation) count
        as nothing and give a probe permit back; exceptions the breaker does
        not record (query errors) mean the dependency answered: a success.
        """
        if not isinstance(exc, Exception) or self._ignore(exc):
            self.release(permit)
            self._ignored.add()
            return Outcome.IGNORED
        if not self._record(exc):
            self.record_success(permit)
            return Outcome.SUCCESS
        self._failures.add()
        self._last_error = scrub(describe(exc))
        self._last_error_type = type(exc).__name__
        self._last_failure_at = self._now()
        if permit.__class__ is Probe:
            self._probe_failed(permit, exc)  # type: ignore[arg-type]
        else:
            self._closed_failed(permit, exc)  # type: ignore[arg-type]
        if call_failed.receivers:
            call_failed.send(sender=self, name=self.name, exception=exc)
        return Outcome.FAILURE

    def release(self, permit: Permit) -> None:
        """Give a permit back without an outcome (the call was cancelled or ignored)."""
        if permit.__class__ is Probe and not permit.settled:  # type: ignore[union-attr]
            permit.settled = True  # type: ignore[union-attr]
            self._store.release_probe(self.name, permit.rec, permit.window, permit.slot)  # type: ignore[union-attr]
            self._denied = None

    def after_fork(self) -> None:
        """Fresh locks in a forked child (another thread may have held one at the fork)."""
        self._lock = threading.Lock()
        for tally in (
            self._successes,
            self._failures,
            self._rejections,
            self._ignored,
            self._retries,
            self._probes,
        ):
            tally._lock = threading.Lock()

    def note_retry(self) -> None:
        """Count a retry made on this breaker's behalf (for snapshot counters)."""
        self._retries.add()

    # --- the ways to wrap a call ------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn`` through the breaker."""
        cell = self._cell
        permit: Permit = cell.rec
        if not (permit.admits and cell.sync_due > self._mono()):
            permit = self._admit(cell)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self.record_failure(exc, permit)
            raise
        self.record_success(permit)
        return result

    async def call_async(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``fn`` through the breaker."""
        permit = self.acquire()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self.record_failure(exc, permit)
            raise
        self.record_success(permit)
        return result

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate a function or coroutine function."""
        wrapper = decorate(fn, self.call, self.call_async)
        wrapper.breaker = self  # type: ignore[attr-defined]
        return wrapper

    def __enter__(self) -> CircuitBreaker:
        permit = self.acquire()
        _HELD.set((*_HELD.get(), (self, permit)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        held = _HELD.get()
        for index in range(len(held) - 1, -1, -1):
            if held[index][0] is self:
                permit = held[index][1]
                _HELD.set(held[:index] + held[index + 1 :])
                break
        else:
            raise RuntimeError(f"breaker {self.name!r}: __exit__ without __enter__")
        if exc is None:
            self.record_success(permit)
        else:
            self.record_failure(exc, permit)
        return False

    async def __aenter__(self) -> CircuitBreaker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        return self.__exit__(exc_type, exc, traceback)

    # --- state ------------------------------------------------------------------

    @property
    def state(self) -> State:
        """CLOSED, OPEN or HALF_OPEN (forced states report OPEN / CLOSED; see ``forced``)."""
        self._refresh()
        return self._cell.rec.public_state(self._now())

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

    def snapshot(self) -> BreakerSnapshot:
        self._refresh()
        cell = self._cell
        rec = cell.rec
        now = self._now()
        state = rec.public_state(now)
        next_probe_at: float | None = None
        if state is State.OPEN and not rec.forced:
            next_probe_at = rec.open_until
        elif state is State.HALF_OPEN:
            window = rec.probe_window(now)
            denied = self._denied == (rec.epoch, window)
            next_probe_at = rec.window_start(window + 1 if denied else window)
        window_calls = self._window
        rate = None
        if window_calls is not None and window_calls:
            rate = round(100.0 * window_calls.count(1) / len(window_calls), 1)
        return BreakerSnapshot(
            name=self.name,
            state=state,
            forced=rec.forced,
            failure_count=cell.failures,
            failure_threshold=self.failure_threshold,
            recovery_timeout=self.recovery_timeout,
            half_open_max_calls=self.half_open_max_calls,
            opened_at=rec.opened_at,
            next_probe_at=next_probe_at,
            last_transition_at=self._last_transition_at or rec.at,
            last_error=self._last_error or rec.error,
            last_error_type=self._last_error_type or rec.error_type,
            last_failure_at=self._last_failure_at,
            failure_rate=rate,
            counters={
                "successes": self._successes.value,
                "failures": self._failures.value,
                "rejections": self._rejections.value,
                "ignored": self._ignored.value,
                "retries": self._retries.value,
                "probes": self._probes.value,
            },
            transitions=tuple(self._history),
            store_kind=self._store.kind,
            store_healthy=self._store.healthy,
            epoch=rec.epoch,
            reason=rec.reason,
            taken_at=now,
        )

    # --- manual control ---------------------------------------------------------

    def force_open(self, reason: str = "forced open by an operator") -> None:
        """Reject every call until ``reset()`` or ``force_closed()``."""

        def build(cur: Record, now: float) -> Record:
            return Record(
                epoch=cur.epoch + 1,
                state=State.OPEN,
                forced=True,
                at=now,
                opened_at=max(now, cur.opened_at or 0.0),
                trips=cur.trips,
                reason=reason,
            )

        self._force(build)

    def force_closed(
        self, reason: str = "forced closed by an operator: failures not counted"
    ) -> None:
        """Let every call through and count nothing (disabled) until ``reset()``."""
        self._force(
            lambda cur, now: Record(
                epoch=cur.epoch + 1,
                state=State.CLOSED,
                forced=True,
                at=now,
                opened_at=cur.opened_at,
                reason=reason,
            )
        )

    def reset(self, reason: str = "reset by an operator") -> None:
        """Closed, failures cleared, backoff forgotten."""
        self._force(
            lambda cur, now: Record(
                epoch=cur.epoch + 1,
                state=State.CLOSED,
                at=now,
                opened_at=cur.opened_at,
                reason=reason,
            )
        )

    def _force(self, build: Callable[[Record, float], Record]) -> None:
        for _ in range(20):
            self._store.sync(self.name, force=True)
            current = self._cell.rec
            installed = self._store.transition(self.name, current, build(current, self._now()))
            self._notice(installed)
            if installed is not None:
                self._denied = None
                return
        raise RuntimeError(f"breaker {self.name!r}: could not apply a manual transition")

    # --- internals: admission -----------------------------------------------------

    def _refresh(self) -> None:
        if self._cell.sync_due <= self._mono():
            self._store.sync(self.name)
            self._notice(None)

    def _admit(self, cell: Any) -> Permit:
        if cell.sync_due <= self._mono():
            self._store.sync(self.name)
            self._notice(None)
        rec: Record = cell.rec
        if rec.admits:
            return rec
        if rec.forced:
            raise self._rejected(None, "forced_open", None)
        now = self._now()
        until: float = rec.open_until  # type: ignore[assignment]
        if now < until:
            raise self._rejected(until, "open", now)
        return self._probe(cell, rec, now)

    def _probe(self, cell: Any, rec: Record, now: float) -> Permit:
        window = rec.probe_window(now)
        if self._denied == (rec.epoch, window):
            raise self._rejected(rec.window_start(window + 1), "half_open", now)
        if self._store.shared:
            # Probing on a stale view would waste the permit: look first.
            self._store.sync(self.name, force=True)
            self._notice(None)
            if cell.rec is not rec:
                return self._admit(cell)
        slot = self._store.acquire_probe(self.name, rec, window, self.half_open_max_calls)
        if not slot:
            self._denied = (rec.epoch, window)
            raise self._rejected(rec.window_start(window + 1), "half_open", now)
        self._probes.add()
        self._enter_half_open(rec, now)
        return Probe(rec, window, slot)

    def _rejected(
        self, next_probe_at: float | None, reason: str, now: float | None
    ) -> CircuitOpenError:
        self._rejections.add()
        error = _open_error(CircuitOpenError, self.name, next_probe_at, now, reason)
        if call_rejected.receivers:
            call_rejected.send(sender=self, name=self.name, error=error)
        return error

    # --- internals: outcomes ------------------------------------------------------

    def _clear_failures(self, permit: Record) -> None:
        if self._cell.rec.epoch == permit.epoch:
            self._store.clear_failures(self.name, permit)

    def _closed_failed(self, permit: Record, exc: BaseException) -> None:
        rec = self._cell.rec
        if rec.forced or not rec.admits or rec.epoch != permit.epoch:
            return  # disabled, or the state moved on since this call started
        count = self._store.add_failure(self.name, rec)
        reason = None
        if count >= self.failure_threshold:
            reason = f"{count} consecutive failures (threshold {self.failure_threshold})"
        window = self._window
        if window is not None:
            window.append(1)
            calls = len(window)
            if calls >= self.minimum_calls:
                rate = 100.0 * window.count(1) / calls
                if rate >= self.failure_rate_threshold:  # type: ignore[operator]
                    reason = (
                        f"failure rate {rate:.0f}% over the last {calls} calls "
                        f"(threshold {self.failure_rate_threshold:g}%)"
                    )
        if reason is not None:
            self._open(rec, reason, exc, trips=1)

    def _settle(self, probe: Probe) -> Record | None:
        """The record a probe's outcome decides about: None if settled or out of date."""
        if probe.settled:
            return None
        probe.settled = True
        current = self._cell.rec
        return current if current.epoch == probe.rec.epoch else None

    def _probe_failed(self, probe: Probe, exc: BaseException) -> None:
        current = self._settle(probe)
        if current is not None:
            self._open(current, "probe failed", exc, trips=current.trips + 1)

    def _probe_succeeded(self, probe: Probe) -> None:
        current = self._settle(probe)
        if current is None:
            return
        closed = Record(
            epoch=current.epoch + 1,
            state=State.CLOSED,
            at=self._now(),
            opened_at=current.opened_at,
            reason="probe succeeded",
        )
        self._notice(self._store.transition(self.name, current, closed))

    def _open(self, prev: Record, reason: str, exc: BaseException, *, trips: int) -> None:
        now = self._now()
        opened_at = max(now, prev.opened_at or 0.0)
        duration = min(
            self.recovery_timeout * self.backoff_multiplier ** max(0, trips - 1),
            self.max_recovery_timeout,
        )
        record = Record(
            epoch=prev.epoch + 1,
            state=State.OPEN,
            at=now,
            opened_at=opened_at,
            open_until=opened_at + duration,
            trips=trips,
            reason=reason,
            error=self._last_error or scrub(describe(exc)),
            error_type=type(exc).__name__,
        )
        self._notice(self._store.transition(self.name, prev, record))

    # --- internals: events --------------------------------------------------------

    def _enter_half_open(self, rec: Record, now: float) -> None:
        with self._lock:
            if self._half_open_epoch == rec.epoch:
                return
            self._half_open_epoch = rec.epoch
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
        if (rec.state, rec.forced, rec.opened_at) == (seen.state, seen.forced, seen.opened_at):
            return  # the same state renumbered (a resync): nothing happened
        now = self._now()
        from_state = seen.public_state(now)
        if seen.state is State.OPEN and self._half_open_epoch == seen.epoch:
            from_state = State.HALF_OPEN
        observed = rec is not installed
        reason = rec.reason + (" (seen in the shared store)" if observed else "")
        transition = Transition(
            from_state.value,
            rec.public_state(now).value,
            rec.at or now,
            reason,
            rec.forced,
            observed,
        )
        self._announce(transition, rec)

    def _announce(self, transition: Transition, rec: Record) -> None:
        self._history.append(transition)
        self._last_transition_at = transition.at
        level = logging.WARNING if transition.to_state == State.OPEN.value else logging.INFO
        log_event(
            logger,
            level,
            "resilience.state_changed",
            breaker=self.name,
            **{"from": transition.from_state, "to": transition.to_state},
            reason=transition.reason,
            forced=transition.forced,
            observed=transition.observed,
            opened_at=iso_utc(rec.opened_at),
            next_probe_at=iso_utc(rec.open_until) if rec.state is State.OPEN else None,
            error=rec.error,
            error_type=rec.error_type,
        )
        if state_changed.receivers:
            state_changed.send(
                sender=self,
                name=self.name,
                old=State(transition.from_state),
                new=State(transition.to_state),
                reason=transition.reason,
                transition=transition,
            )
