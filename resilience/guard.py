"""One guarded call: breaker, then retry, inside a deadline, with errors that say what failed.

    rows = guarded("get_active_sessions", load_sessions)            # sync
    rows = await guarded_async("get_active_sessions", load_async)   # async

    @Guard("get_latest_prices")
    def latest_prices(): ...

    @Guard("get_rates", breaker="rates-api", fallback=lambda failure: CACHED_RATES)
    def rates(): ...

A guarded call takes one permit from the breaker and reports one outcome
(with its duration, for the slow-call rule), however many attempts the
retry policy made. It raises ``CircuitOpenError`` when the breaker refuses,
``DeadlineExceeded`` when the budget ran out, and ``OperationFailed``
("Failed to <operation>: <error>") for anything else, each logged once in
the contract's JSON shape (traceback at DEBUG). With ``fallback=``, the
guard returns ``fallback(failure)`` instead of raising (Polly's fallback,
outermost); a cancellation is never caught. A guard for a breaker already
guarding this call (nested) just runs the function: the outer guard
retries, counts and falls back.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from .breaker import CircuitBreaker, Permit, decorate
from .clock import Clock, iso_utc
from .deadline import (
    Deadline,
    activate,
    current_deadline,
    current_timeouts,
    deactivate,
    remaining_budget,
)
from .errors import CircuitOpenError, GuardedCallError, OperationFailed
from .logs import Summary, log_failure
from .registry import get_breaker
from .retry import RetryPolicy, RetryRun

Fallback = Callable[[GuardedCallError], Any]

__all__ = [
    "Guard",
    "current_deadline",
    "current_timeouts",
    "guarded",
    "guarded_async",
    "remaining_budget",
]

logger = logging.getLogger("resilience.guard")

P = ParamSpec("P")
R = TypeVar("R")

# An outage fails every call the same way: one line per operation, error type and minute.
_summary = Summary(logger)

_guarding: ContextVar[frozenset[str]] = ContextVar("resilience_guarding", default=frozenset())


class Guard:
    """A named operation protected by a breaker, a retry policy and a deadline."""

    def __init__(
        self,
        operation: str,
        *,
        breaker: CircuitBreaker | str,
        retry: RetryPolicy | bool = True,
        deadline: float | None = None,
        clock: Clock | None = None,
        fallback: Fallback | None = None,
    ) -> None:
        """``fallback(failure)`` answers instead of a failure or a refusal, once it is logged."""
        self.operation = operation
        self._breaker = breaker
        self._retry = retry
        self._deadline = deadline
        self._clock = clock
        self.fallback = fallback

    @property
    def breaker(self) -> CircuitBreaker:
        # Looked up per call, so a settings change (a new registry) is seen.
        if isinstance(self._breaker, CircuitBreaker):
            return self._breaker
        return get_breaker(self._breaker)

    def _start(self, breaker: CircuitBreaker) -> tuple[Permit, RetryRun, tuple[Any, Any]]:
        """Take the permit, plan the retries and make the deadline current.

        The permit first: a refusal (every call while the breaker is open)
        then costs nothing more; what follows only builds objects from
        settings that were checked at startup.
        """
        permit = self._acquire(breaker)
        return (permit, *self._plan_run(breaker, permit))

    def _plan_run(
        self, breaker: CircuitBreaker, permit: Permit
    ) -> tuple[RetryRun, tuple[Any, Any]]:
        config = breaker.config
        if isinstance(self._retry, RetryPolicy):
            policy = self._retry
        else:
            policy = config.retry if self._retry else config.once
        clock = self._clock or breaker.clock
        budget = config.call_deadline if self._deadline is None else float(self._deadline)
        deadline = Deadline.within(budget, clock=clock)
        run = RetryRun(policy, deadline, self.operation, breaker, permit, clock)
        return run, _enter(deadline, _with(_guarding.get(), breaker.name))

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` as this operation."""
        breaker = self.breaker
        if breaker.name in _guarding.get():
            return fn(*args, **kwargs)  # nested: the outer guard retries and counts
        try:
            permit, run, tokens = self._start(breaker)
        except CircuitOpenError as refused:
            if self.fallback is None:
                raise
            return self.fallback(refused)
        try:
            result = run.call(functools.partial(fn, *args, **kwargs) if args or kwargs else fn)
        except BaseException as exc:
            failure = self._failed(breaker, permit, exc, run)
            if self.fallback is None or not isinstance(failure, GuardedCallError):
                raise failure from exc
            return self.fallback(failure)
        finally:
            _leave(tokens)
        breaker.record_success(permit, run.took)
        return result

    async def call_async(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``fn(*args, **kwargs)`` as this operation."""
        breaker = self.breaker
        if breaker.name in _guarding.get():
            return await fn(*args, **kwargs)
        # The permit and the outcome may wait on a shared store (a paused Redis costs one
        # socket timeout): in a thread, never on the event loop, which serves every request.
        try:
            permit = await self._acquire_async(breaker)
        except CircuitOpenError as refused:
            if self.fallback is None:
                raise
            return await self._fall_back_async(refused)
        run, tokens = self._plan_run(breaker, permit)
        try:
            result = await run.call_async(functools.partial(fn, *args, **kwargs))
        except BaseException as exc:
            failure = await _off_the_loop(breaker, self._failed, breaker, permit, exc, run)
            if self.fallback is None or not isinstance(failure, GuardedCallError):
                raise failure from exc
            return await self._fall_back_async(failure)
        finally:
            _leave(tokens)
        await _off_the_loop(breaker, breaker.record_success, permit, run.took)
        return result

    async def _acquire_async(self, breaker: CircuitBreaker) -> Permit:
        if not breaker.store.shared:
            return self._acquire(breaker)
        taking = asyncio.ensure_future(asyncio.to_thread(self._acquire, breaker))
        try:
            return await asyncio.shield(taking)
        except asyncio.CancelledError:
            # Cancelled while the thread takes it: give back what it takes (a probe above
            # all), in a thread too.
            def give_back(done: asyncio.Future[Permit]) -> None:
                if not done.cancelled() and done.exception() is None:
                    asyncio.get_running_loop().run_in_executor(None, breaker.release, done.result())

            taking.add_done_callback(give_back)
            raise

    async def _fall_back_async(self, failure: GuardedCallError) -> Any:
        answer = self.fallback(failure)  # type: ignore[misc]
        return await answer if inspect.isawaitable(answer) else answer

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a function or coroutine function."""
        return decorate(fn, self.call, self.call_async)

    # outcomes

    def _event(self, breaker: CircuitBreaker) -> str:
        if self.operation.startswith(f"{breaker.name}."):
            return f"{self.operation}_failed"
        return f"{breaker.name}.{self.operation}_failed"

    def _acquire(self, breaker: CircuitBreaker) -> Permit:
        try:
            return breaker.acquire()
        except CircuitOpenError as exc:
            exc.operation = self.operation
            self._log(breaker, exc, logging.WARNING, probe=True)
            raise

    def _failed(
        self, breaker: CircuitBreaker, permit: Permit, exc: BaseException, run: RetryRun
    ) -> BaseException:
        """Report the outcome once, log it, and say what failed."""
        breaker.record_failure(exc, permit, run.took)
        attempts = run.attempts
        if not isinstance(exc, Exception):
            return exc  # cancelled or interrupted: not a failure to describe
        if isinstance(exc, GuardedCallError) and exc.operation == self.operation:
            failure: GuardedCallError = exc
        elif isinstance(exc, GuardedCallError):
            failure = OperationFailed(
                self.operation,
                exc,
                error=exc.error,
                error_type=exc.error_type,
                breaker=breaker.name,
                attempts=attempts,
            )
        else:
            failure = OperationFailed(self.operation, exc, breaker=breaker.name, attempts=attempts)
        self._log(breaker, failure, logging.ERROR, attempts=attempts)
        return failure

    def _log(
        self,
        breaker: CircuitBreaker,
        failure: GuardedCallError,
        level: int,
        *,
        probe: bool = False,
        **extra: Any,
    ) -> None:
        """The contract's failure event; a refusal has no traceback worth logging.

        The breaker's state (and, with ``probe``, when the next probe is due) are
        read only for a line that is written: most are summed up (``Summary``).
        """

        def more() -> dict[str, Any]:
            state = {"breaker_state": breaker.public_state}
            if probe:
                state["next_probe_at"] = iso_utc(getattr(failure, "next_probe_at", None))
            return state

        log_failure(
            logger,
            self._event(breaker),
            failure,
            operation=self.operation,
            level=level,
            traceback=not isinstance(failure, CircuitOpenError),
            summary=_summary,
            more=more,
            breaker=breaker.name,
            **extra,
        )


async def _off_the_loop(breaker: CircuitBreaker, fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)`` in a thread when the breaker's state is shared (its store may do I/O);
    here when it is in this process (a thread would cost more than the call)."""
    if breaker.store.shared:
        return await asyncio.to_thread(fn, *args)
    return fn(*args)


@functools.lru_cache(maxsize=64)
def _with(active: frozenset[str], name: str) -> frozenset[str]:
    """The breakers guarding a call: a few distinct sets, built once each."""
    return active | {name}


def _enter(deadline: Deadline, active: frozenset[str]) -> tuple[Any, Any]:
    return activate(deadline), _guarding.set(active)


def _leave(tokens: tuple[Any, Any]) -> None:
    deactivate(tokens[0])
    _guarding.reset(tokens[1])


def guarded(
    operation: str,
    fn: Callable[[], R],
    *,
    breaker_name: str,
    retry: RetryPolicy | bool = True,
    deadline: float | None = None,
    fallback: Fallback | None = None,
) -> R:
    """Run ``fn()`` as one guarded call of ``operation`` on breaker ``breaker_name``."""
    guard = Guard(
        operation, breaker=breaker_name, retry=retry, deadline=deadline, fallback=fallback
    )
    return guard.call(fn)


async def guarded_async(
    operation: str,
    fn: Callable[[], Awaitable[R]],
    *,
    breaker_name: str,
    retry: RetryPolicy | bool = True,
    deadline: float | None = None,
    fallback: Fallback | None = None,
) -> R:
    """The async twin of ``guarded``."""
    guard = Guard(
        operation, breaker=breaker_name, retry=retry, deadline=deadline, fallback=fallback
    )
    return await guard.call_async(fn)
