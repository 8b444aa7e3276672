"""pybreaker 1.4's API on resilience's breaker: change one import, keep the code.

    import resilience.compat.pybreaker as pybreaker     # was: import pybreaker

    db_breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60, success_threshold=2)

    @db_breaker
    def update_customer(customer): ...

    # A fleet that shares one Redis gets resilience's shared store underneath:
    storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, redis.Redis(), namespace="db")
    db_breaker = pybreaker.CircuitBreaker(state_storage=storage, name="db")

What pybreaker's users get for the import: the state is a decision record
published with ``add`` on top of the one it follows, so a starting process
never resets it and no process overwrites another's ``opened_at``; probes
are limited fleet-wide (``success_threshold`` of them a recovery window);
times are Redis's clock, not each host's; and no lock is held around the
protected call. The README lists every deliberate difference with pybreaker,
and why.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import types
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from ..breaker import CircuitBreaker as Breaker
from ..breaker import Permit, Probe, State
from ..clock import Clock
from ..errors import CircuitOpenError
from ..signals import state_changed
from ..stores import BreakerStore, CacheStore, LocalStore
from .redis_cache import RedisClientCache

__all__ = (
    "STATE_CLOSED",
    "STATE_HALF_OPEN",
    "STATE_OPEN",
    "CircuitBreaker",
    "CircuitBreakerError",
    "CircuitBreakerListener",
    "CircuitBreakerState",
    "CircuitMemoryStorage",
    "CircuitRedisStorage",
)

STATE_OPEN = "open"
STATE_CLOSED = "closed"
STATE_HALF_OPEN = "half-open"
NAMES = {State.OPEN: STATE_OPEN, State.CLOSED: STATE_CLOSED, State.HALF_OPEN: STATE_HALF_OPEN}
HAS_TORNADO_SUPPORT = True  # call_async works with asyncio, which Tornado 5+ runs on
HAS_REDIS_SUPPORT = True

T = TypeVar("T")
Exclusion = type[BaseException] | Callable[[BaseException], bool]


class CircuitBreakerError(Exception):
    """The breaker refused the call (open), or the call that failed opened it."""


class CircuitBreakerState:
    """A state as listeners and ``breaker.state`` see it: ``name`` is all it carries."""

    def __init__(self, cb: CircuitBreaker, name: str) -> None:
        self._breaker = cb
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name}>"


class CircuitClosedState(CircuitBreakerState):
    def __init__(self, cb: CircuitBreaker, prev_state: Any = None, notify: bool = False) -> None:
        super().__init__(cb, STATE_CLOSED)


class CircuitOpenState(CircuitBreakerState):
    def __init__(self, cb: CircuitBreaker, prev_state: Any = None, notify: bool = False) -> None:
        super().__init__(cb, STATE_OPEN)


class CircuitHalfOpenState(CircuitBreakerState):
    def __init__(self, cb: CircuitBreaker, prev_state: Any = None, notify: bool = False) -> None:
        super().__init__(cb, STATE_HALF_OPEN)


_STATE_CLASSES: dict[str, type[CircuitBreakerState]] = {
    STATE_CLOSED: CircuitClosedState,
    STATE_OPEN: CircuitOpenState,
    STATE_HALF_OPEN: CircuitHalfOpenState,
}


class CircuitBreakerListener:
    """Subclass and override what you need; every hook does nothing by default."""

    def before_call(self, cb: CircuitBreaker, func: Callable[..., Any], *args: Any, **kwargs: Any):
        """Called before ``cb`` calls ``func``."""

    def failure(self, cb: CircuitBreaker, exc: BaseException) -> None:
        """Called when a call through ``cb`` failed (and counted)."""

    def success(self, cb: CircuitBreaker) -> None:
        """Called when a call through ``cb`` succeeded."""

    def state_change(
        self,
        cb: CircuitBreaker,
        old_state: CircuitBreakerState | None,
        new_state: CircuitBreakerState,
    ) -> None:
        """Called when ``cb``'s state changes, here or (seen in the store) in another process."""


class CircuitBreakerStorage:
    """Where a breaker's state lives: a resilience store, and the state a new breaker starts in."""

    def __init__(self, name: str, state: str, store: BreakerStore) -> None:
        if state not in _STATE_CLASSES:
            raise ValueError(f"Unknown state {state!r}, valid states: {', '.join(_STATE_CLASSES)}")
        self._name = name
        self.initial_state = state
        self.store = store

    @property
    def name(self) -> str:
        return self._name


class CircuitMemoryStorage(CircuitBreakerStorage):
    """State in this process (resilience's ``LocalStore``)."""

    def __init__(self, state: str, *, clock: Clock | None = None) -> None:
        super().__init__("memory", state, LocalStore(clock=clock))


class CircuitRedisStorage(CircuitBreakerStorage):
    """State shared through Redis by every process and host (resilience's ``CacheStore``).

    ``state`` is where a breaker starts only if Redis holds no decision yet: a
    process that starts never resets what the fleet decided. While Redis is
    away, each process goes on with its own view and settles with the fleet
    when it returns (``fallback_circuit_state`` is not needed for that).
    ``cluster_mode`` is accepted and changes nothing: every key of one
    breaker is read and written one at a time. ``clock`` (not pybreaker's) is
    for tests, as on the memory storage.
    """

    BASE_NAMESPACE = "pybreaker"

    def __init__(
        self,
        state: str,
        redis_object: Any,
        namespace: str | None = None,
        fallback_circuit_state: str = STATE_CLOSED,
        cluster_mode: bool = False,
        *,
        clock: Clock | None = None,
    ) -> None:
        prefix = f"{namespace}:{self.BASE_NAMESPACE}" if namespace else self.BASE_NAMESPACE
        store = CacheStore(cache=RedisClientCache(redis_object), key_prefix=prefix, clock=clock)
        super().__init__("redis", state, store)
        self.fallback_circuit_state = fallback_circuit_state


def _every_exception(exc: BaseException) -> bool:
    return True  # pybreaker counts every exception that is not excluded


class CircuitBreaker:
    """pybreaker's ``CircuitBreaker``: the same arguments, properties and ways to call."""

    def __init__(
        self,
        fail_max: int = 5,
        reset_timeout: float = 60,
        success_threshold: int = 1,
        exclude: Iterable[Exclusion] | None = None,
        listeners: Sequence[CircuitBreakerListener] | None = None,
        state_storage: CircuitBreakerStorage | None = None,
        name: str | None = None,
        throw_new_error_on_trip: bool = True,
    ) -> None:
        self._state_storage = state_storage or CircuitMemoryStorage(STATE_CLOSED)
        self._excluded: list[Exclusion] = list(exclude or [])
        self._listeners: list[CircuitBreakerListener] = list(listeners or [])
        self._name = name
        self._throw_new_error_on_trip = throw_new_error_on_trip
        self._failures = 0  # this process's failures since its last success (while not closed)
        self._state: CircuitBreakerState | None = None
        self._breaker = Breaker(
            name or "breaker",
            store=self._state_storage.store,
            failure_threshold=fail_max,
            recovery_timeout=reset_timeout,
            success_threshold=success_threshold,
            half_open_max_calls=success_threshold,  # each success in half-open is a probe
            record=[_every_exception],
        )
        state_changed.connect(self._changed, sender=self._breaker)
        initial = self._state_storage.initial_state
        if initial != STATE_CLOSED and self._breaker.record.initial:
            self._breaker.state  # noqa: B018 - a look first: the store may hold a decision
            if self._breaker.record.initial:  # it does not: start where the storage says
                self._set(initial)
        self._state = self._create_new_state(self.current_state)

    # the breaker underneath

    @property
    def breaker(self) -> Breaker:
        """resilience's breaker underneath (its snapshot, its page, its signals)."""
        return self._breaker

    def _configure(self, **fields: Any) -> None:
        self._breaker.configure(replace(self._breaker.config, **fields))

    # settings, as pybreaker's properties

    @property
    def fail_max(self) -> int:
        return self._breaker.config.failure_threshold  # type: ignore[return-value]

    @fail_max.setter
    def fail_max(self, number: int) -> None:
        self._configure(failure_threshold=number)

    @property
    def reset_timeout(self) -> float:
        return self._breaker.config.recovery_timeout

    @reset_timeout.setter
    def reset_timeout(self, timeout: float) -> None:
        longest = max(timeout, self._breaker.config.longest_open)
        self._configure(recovery_timeout=timeout, max_recovery_timeout=longest)

    @property
    def success_threshold(self) -> int:
        return self._breaker.config.success_threshold

    @success_threshold.setter
    def success_threshold(self, threshold: int) -> None:
        self._configure(success_threshold=threshold, half_open_max_calls=threshold)

    @property
    def name(self) -> str | None:
        return self._name

    @name.setter
    def name(self, name: str) -> None:
        self._name = name  # how it is shown; the state stays under the name it was made with

    # state

    @property
    def current_state(self) -> str:
        """ "closed", "open" or "half-open"."""
        return NAMES[self._breaker.state]

    @property
    def state(self) -> CircuitBreakerState:
        """The current state's object (the same one until the state changes)."""
        name = self.current_state
        if self._state is None or self._state.name != name:
            self._state = self._create_new_state(name, self._state, notify=True)
        return self._state

    @state.setter
    def state(self, name: str) -> None:
        previous = self.state
        self._set(name)
        self._state = self._create_new_state(name, previous, notify=True)

    def _create_new_state(
        self, new_state: str, prev_state: CircuitBreakerState | None = None, notify: bool = False
    ) -> CircuitBreakerState:
        """pybreaker's state object for ``new_state`` (listeners are told by the breaker)."""
        classes = {
            STATE_CLOSED: CircuitClosedState,
            STATE_OPEN: CircuitOpenState,
            STATE_HALF_OPEN: CircuitHalfOpenState,
        }  # looked up now: a test may have replaced one
        if new_state not in classes:
            raise ValueError(f"Unknown state {new_state!r}, valid states: {', '.join(classes)}")
        return classes[new_state](self, prev_state=prev_state, notify=notify)

    @property
    def fail_counter(self) -> int:
        """Consecutive failures: the fleet's while closed; this process's since, while not."""
        if self._breaker.state is State.CLOSED:
            return self._breaker.snapshot().failure_count
        return self._failures

    @property
    def success_counter(self) -> int:
        """Successful probes of the current half-open state, fleet-wide."""
        snapshot = self._breaker.snapshot()
        return snapshot.probe_successes if snapshot.state is State.HALF_OPEN else 0

    def open(self) -> bool:
        """Open for ``reset_timeout``; returns ``throw_new_error_on_trip``."""
        self._breaker.open("opened by hand (pybreaker's open())")
        return self._throw_new_error_on_trip

    def half_open(self) -> None:
        """Let the next calls through as probes: ``success_threshold`` close it, a failure opens."""
        self._breaker.half_open("half-opened by hand (pybreaker's half_open())")

    def close(self) -> None:
        """Closed, counts cleared."""
        self._failures = 0
        self._breaker.reset("closed by hand (pybreaker's close())")

    def _set(self, name: str) -> None:
        actions = {STATE_OPEN: self.open, STATE_HALF_OPEN: self.half_open, STATE_CLOSED: self.close}
        if name not in actions:
            raise ValueError(f"Unknown state {name!r}, valid states: {', '.join(actions)}")
        actions[name]()

    # exclusions and listeners

    @property
    def excluded_exceptions(self) -> tuple[Exclusion, ...]:
        return tuple(self._excluded)

    def add_excluded_exception(self, exception: Exclusion) -> None:
        self._excluded.append(exception)

    def add_excluded_exceptions(self, *exceptions: Exclusion) -> None:
        self._excluded.extend(exceptions)

    def remove_excluded_exception(self, exception: Exclusion) -> None:
        self._excluded.remove(exception)

    def is_system_error(self, exception: BaseException) -> bool:
        """Whether ``exception`` counts as a failure: every exception not excluded."""
        for exclusion in self._excluded:
            if isinstance(exclusion, type):
                if isinstance(exception, exclusion):
                    return False
            elif exclusion(exception):
                return False
        return True

    @property
    def listeners(self) -> tuple[CircuitBreakerListener, ...]:
        return tuple(self._listeners)

    def add_listener(self, listener: CircuitBreakerListener) -> None:
        self._listeners.append(listener)

    def add_listeners(self, *listeners: CircuitBreakerListener) -> None:
        self._listeners.extend(listeners)

    def remove_listener(self, listener: CircuitBreakerListener) -> None:
        self._listeners.remove(listener)

    def _changed(self, sender: Any, old: State, new: State, **kwargs: Any) -> None:
        old_state, new_state = NAMES[old], NAMES[new]
        before, after = _STATE_CLASSES[old_state](self), _STATE_CLASSES[new_state](self)
        for listener in self._listeners:
            listener.state_change(self, before, after)

    # calls

    def _acquire(self, func: Callable[..., Any], args: tuple, kwargs: dict) -> Permit:
        try:
            permit = self._breaker.acquire()
        except CircuitOpenError as refused:
            raise CircuitBreakerError(str(refused)) from refused
        for listener in self._listeners:
            listener.before_call(self, func, *args, **kwargs)
        return permit

    def _succeeded(self, permit: Permit) -> None:
        self._failures = 0
        self._breaker.record_success(permit)
        for listener in self._listeners:
            listener.success(self)

    def _failed(self, exc: BaseException, permit: Permit, *, reraise: bool = True) -> None:
        if not self.is_system_error(exc):
            self._succeeded(permit)  # an excluded exception: the dependency answered
        else:
            before = self._breaker.record
            if isinstance(permit, Probe) or permit.uid == before.uid:
                self._failures += 1  # a call of a decision that has gone counts nothing
            self._breaker.record_failure(exc, permit)
            for listener in self._listeners:
                listener.failure(self, exc)
            after = self._breaker.record
            tripped = after.state is State.OPEN and after.parent == before.uid
            if tripped and self._throw_new_error_on_trip:
                message = (
                    "Trial call failed, circuit breaker opened"
                    if before.state is State.OPEN
                    else "Failures threshold reached, circuit breaker opened"
                )
                raise CircuitBreakerError(message) from exc
        if reraise:
            raise exc

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``func`` through the breaker (a generator is followed until it ends)."""
        permit = self._acquire(func, args, kwargs)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            self._failed(exc, permit)
            raise  # not reached: _failed raised
        if isinstance(result, types.GeneratorType):
            return self._follow(result, permit)  # type: ignore[return-value]
        self._succeeded(permit)
        return result

    def _follow(self, generator: Generator[Any, Any, Any], permit: Permit) -> Generator:
        """A generator's outcome is known when it ends: success, or the exception it raised."""
        try:
            value = yield next(generator)
            while True:
                value = yield generator.send(value)
        except StopIteration:
            self._succeeded(permit)
            return
        except GeneratorExit:
            self._breaker.release(permit)  # closed before it ended: no outcome
            generator.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - pybreaker counts whatever it raised
            self._failed(exc, permit, reraise=False)
            generator.throw(exc)  # thrown in from outside: the generator may handle it

    async def call_async(self, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``func`` through the breaker (asyncio; Tornado 5+ can ``yield`` it)."""
        permit = self._acquire(func, args, kwargs)
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            self._failed(exc, permit)
            raise
        self._succeeded(permit)
        return result

    @contextlib.contextmanager
    def calling(self) -> Generator[None, None, None]:
        """``with breaker.calling(): ...``: the block is the call."""
        permit = self._acquire(self.calling, (), {})
        try:
            yield
        except BaseException as exc:  # noqa: BLE001 - counted, then raised again
            self._failed(exc, permit)
        else:
            self._succeeded(permit)

    def __call__(self, *call_args: Any, **call_kwargs: Any) -> Callable[..., Any]:
        """A decorator: ``@breaker``, or ``@breaker(__pybreaker_call_async=True)``."""
        force_async = call_kwargs.pop("__pybreaker_call_async", False)

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            if force_async or inspect.iscoroutinefunction(func):

                @functools.wraps(func)
                async def awaited(*args: Any, **kwargs: Any) -> Any:
                    return await self.call_async(func, *args, **kwargs)

                return awaited

            @functools.wraps(func)
            def called(*args: Any, **kwargs: Any) -> Any:
                return self.call(func, *args, **kwargs)

            return called

        return decorate(call_args[0]) if call_args else decorate
