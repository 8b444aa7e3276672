"""Retry on tenacity: connection errors only, each attempt logged, inside a deadline.

Rules, in the order they are checked after a failed attempt:
1. only errors the policy retries are retried: by default a refused or reset
   connection, never a timeout (retrying one makes the person waiting wait
   twice) and never a call that was not attempted;
2. a half-open probe is never retried (its one try is the probe), and no
   retry happens once the breaker has left CLOSED (another call opened it);
3. at most ``attempts`` attempts;
4. no attempt starts after the deadline: the wait is cut to the budget left,
   and if what is left after the wait is too little for an attempt, the
   policy gives up now (``DeadlineExceeded``) instead of sleeping in vain.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, Retrying

from .breaker import Probe
from .clock import SYSTEM_CLOCK, Clock
from .conf import DEFAULTS
from .deadline import MIN_ATTEMPT_BUDGET, Deadline
from .errors import DeadlineExceeded, is_retryable
from .logs import Summary, failure_data
from .signals import retry_attempted
from .state import State

if TYPE_CHECKING:
    from .breaker import CircuitBreaker, Permit

logger = logging.getLogger("resilience.retry")

R = TypeVar("R")

# A flapping dependency makes many calls retry alike: one line per operation, error type
# and minute, each retry at DEBUG (and counted in the metrics' retry attempts).
_summary = Summary(logger)


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, how long between them, and which errors deserve another try."""

    attempts: int = DEFAULTS["RETRY_ATTEMPTS"]
    waits: tuple[float, ...] = DEFAULTS["RETRY_WAITS"]
    jitter: float = DEFAULTS["RETRY_JITTER"]  # up to this many seconds added to each wait
    retry_on: Callable[[BaseException], bool] = is_retryable

    def without_retries(self) -> RetryPolicy:
        return RetryPolicy(attempts=1, waits=self.waits, jitter=0.0, retry_on=self.retry_on)

    def wait_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (2, 3, ...); the last wait repeats."""
        base = self.waits[min(attempt - 2, len(self.waits) - 1)] if self.waits else 0.0
        return base + (random.uniform(0.0, self.jitter) if self.jitter > 0 else 0.0)


class RetryRun:
    """One guarded call's retries: tenacity's strategies, and what they observed."""

    def __init__(
        self,
        policy: RetryPolicy,
        deadline: Deadline,
        operation: str,
        breaker: CircuitBreaker | None = None,
        permit: Permit | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock or SYSTEM_CLOCK
        self.deadline = deadline
        self.operation = operation
        self.breaker = breaker
        self.is_probe = isinstance(permit, Probe)
        self.attempts = 0
        self.took: float | None = None  # seconds the call took, attempts and waits included
        self.on_loop = False  # set by call_async
        self.out_of_time = False
        self.last_error: BaseException | None = None

    def retry(self, state: RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None or not outcome.failed:
            return False
        exc = outcome.exception()
        if isinstance(exc, DeadlineExceeded) or not self.policy.retry_on(exc):
            return False
        if self.is_probe:
            return False
        return self._closed()

    def _closed(self) -> bool:
        """Whether the breaker is still closed. On the event loop, as this process last saw it:
        a fresh look may wait on the shared store, and the loop serves every request."""
        breaker = self.breaker
        if breaker is None:
            return True
        return (breaker.record.state if self.on_loop else breaker.state) is State.CLOSED

    def wait(self, state: RetryCallState) -> float:
        return min(self.policy.wait_before(state.attempt_number + 1), self.deadline.remaining())

    def stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.policy.attempts:
            return True
        if self.deadline.remaining() - state.upcoming_sleep < MIN_ATTEMPT_BUDGET:
            self.out_of_time = True
            return True
        return False

    def before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        self.last_error = exc
        name = self.breaker.name if self.breaker is not None else None
        if self.breaker is not None:
            self.breaker.note_retry()
        remaining = self.deadline.remaining()
        _summary.record(
            (self.operation, type(exc).__name__),
            logging.WARNING,
            "resilience.retry",
            lambda: {
                **(failure_data(exc, self.operation) if exc is not None else {}),
                "breaker": name,
                "attempt": state.attempt_number,
                "max_attempts": self.policy.attempts,
                "wait": round(state.upcoming_sleep, 3),
                "remaining_budget": round(remaining, 3),
            },
        )
        if retry_attempted.receivers:
            retry_attempted.send(
                sender=self.breaker,
                name=name,
                operation=self.operation,
                attempt=state.attempt_number,
                wait=state.upcoming_sleep,
                exception=exc,
            )

    def start_attempt(self) -> None:
        if self.attempts:
            # Checked again after the wait: the breaker may have opened meanwhile.
            if not self._closed():
                raise self.last_error or DeadlineExceeded(self.operation, self.deadline.budget)
            if self.deadline.expired():
                raise DeadlineExceeded(self.operation, self.deadline.budget, attempts=self.attempts)
        elif self.deadline.remaining() <= 0:
            raise DeadlineExceeded(self.operation, self.deadline.budget)
        self.attempts += 1

    def give_up(self, exc: BaseException) -> BaseException:
        """What to raise after the last attempt: the error, or DeadlineExceeded wrapping it."""
        if self.out_of_time and not isinstance(exc, DeadlineExceeded):
            name = self.breaker.name if self.breaker is not None else None
            return DeadlineExceeded(
                self.operation,
                self.deadline.budget,
                attempts=self.attempts,
                cause=exc,
                breaker=name,
            )
        return exc

    def strategies(self) -> dict[str, Any]:
        return {
            "stop": self.stop,
            "wait": self.wait,
            "retry": self.retry,
            "before_sleep": self.before_sleep,
            "reraise": True,
        }

    def call(self, fn: Callable[[], R]) -> R:
        """Run ``fn`` under the policy; ``self.attempts`` says how many tries it took."""

        def attempt() -> R:
            self.start_attempt()
            return fn()

        # One attempt (every statement the QuestDB engine guards) needs none of
        # tenacity's machinery, which would cost more than the guard itself.
        retrying = (
            attempt
            if self.policy.attempts <= 1
            else Retrying(sleep=self.clock.sleep, **self.strategies()).wraps(attempt)
        )
        started = self.clock.monotonic()
        try:
            return retrying()
        except Exception as exc:
            failure = self.give_up(exc)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            self._timed(started)

    async def call_async(self, fn: Callable[[], Awaitable[R]], *, clock: Clock | None = None) -> R:
        """The async twin; each attempt is also cut off when the budget runs out."""
        deadline, operation = self.deadline, self.operation
        self.on_loop = True

        async def attempt() -> R:
            self.start_attempt()
            try:
                async with asyncio.timeout(deadline.remaining()):
                    return await fn()
            except TimeoutError as exc:
                if deadline.expired():
                    raise DeadlineExceeded(
                        operation, deadline.budget, attempts=self.attempts, cause=exc
                    ) from exc
                raise

        retrying = AsyncRetrying(sleep=self.clock.async_sleep, **self.strategies())
        started = self.clock.monotonic()
        try:
            return await retrying(attempt)
        except Exception as exc:
            failure = self.give_up(exc)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            self._timed(started)

    def _timed(self, started: float) -> None:
        """The call's latency, attempts and waits included, for the fleet figures.

        The guarded call is already timed here (its deadline runs on this
        clock), so the breaker's own closed path stays a counter bump.
        A call that never started an attempt took no time worth showing.
        """
        self.took = self.clock.monotonic() - started
        if self.breaker is not None and self.attempts:
            self.breaker.note_latency(self.took)
