"""A time budget for one guarded call, visible to the code running inside it.

The guard opens a ``Deadline`` and makes it current (a context variable, so
threads and asyncio tasks each see their own). Whatever runs inside (a
database backend, an HTTP client) asks ``timeout()`` (or
``current_timeouts()``) to size its own connect and read timeouts, so the
whole call (attempts, waits and timeouts) fits the budget::

    guarded("rates", lambda: requests.get(url, timeout=timeout(5)), breaker_name="rates")

A guard nested in another never outlives the outer one's budget.

What a deadline can interrupt, and what it cannot. Python cannot stop a
thread from the outside, so in synchronous code the deadline bounds only
what the call hands it to: a client's ``timeout=`` fed from ``timeout()``,
the waits between retries, and the database aliases this app guards (their
connects and statements are cut off on the client side). Code that ignores
it runs to its end: ``guarded("slow", lambda: time.sleep(4) or "done")``
returns "done" after 4 s against a 2 s deadline, since nothing asked the
deadline. So pass ``timeout()`` to every client call inside a guard; a call
with no timeout of its own belongs in async code, where ``guarded_async``
cancels each attempt at its next ``await`` when the budget runs out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass

from .clock import SYSTEM_CLOCK, Clock
from .errors import DeadlineExceeded

_current: ContextVar[Deadline | None] = ContextVar("resilience_deadline", default=None)

# Less budget than this left: an attempt could not succeed, so it is not made.
MIN_ATTEMPT_BUDGET = 0.01


class Deadline:
    """``budget`` seconds from now, on a monotonic clock."""

    __slots__ = ("budget", "clock", "expires_at")

    def __init__(self, budget: float, *, clock: Clock | None = None) -> None:
        self.clock = clock or SYSTEM_CLOCK
        self.budget = float(budget)
        self.expires_at = self.clock.monotonic() + self.budget

    @classmethod
    def within(cls, budget: float, *, clock: Clock | None = None) -> Deadline:
        """A new deadline, cut to the current one's if that ends sooner."""
        deadline = cls(budget, clock=clock)
        outer = _current.get()
        if outer is not None and outer.remaining() < deadline.remaining():
            deadline.budget = outer.remaining()
            deadline.expires_at = deadline.clock.monotonic() + deadline.budget
        return deadline

    def remaining(self) -> float:
        return max(0.0, self.expires_at - self.clock.monotonic())

    def expired(self) -> bool:
        return self.clock.monotonic() >= self.expires_at

    def cap(self, seconds: float | None) -> float:
        """``seconds`` cut to what is left (for a connect or statement timeout)."""
        remaining = self.remaining()
        return remaining if seconds is None else min(float(seconds), remaining)

    def check(self, operation: str, *, attempts: int = 0) -> None:
        """Raise ``DeadlineExceeded`` if nothing is left."""
        if self.expired():
            raise DeadlineExceeded(operation, self.budget, attempts=attempts)

    def __repr__(self) -> str:
        return f"Deadline(budget={self.budget:g}, remaining={self.remaining():.3f})"


def activate(deadline: Deadline) -> Token[Deadline | None]:
    """Make ``deadline`` current; pass the token to ``deactivate`` when the call ends."""
    return _current.set(deadline)


def deactivate(token: Token[Deadline | None]) -> None:
    _current.reset(token)


@contextlib.contextmanager
def deadline_scope(deadline: Deadline) -> Iterator[Deadline]:
    """Make ``deadline`` current for the code inside."""
    token = activate(deadline)
    try:
        yield deadline
    finally:
        deactivate(token)


def current_deadline() -> Deadline | None:
    """The deadline of the guarded call running here, if any."""
    return _current.get()


def remaining_budget(default: float | None = None) -> float | None:
    """Seconds left in the current guarded call (``default`` outside one)."""
    deadline = _current.get()
    return default if deadline is None else deadline.remaining()


def timeout(cap: float | None = None, *, operation: str = "call") -> float | None:
    """Seconds a client may wait now, for its own ``timeout=``: what is left of the
    current guarded call's budget, cut to ``cap``; outside a guarded call, ``cap``.

    With less than ``MIN_ATTEMPT_BUDGET`` left, nothing should be sent: raises
    ``DeadlineExceeded`` (not attempted, so the breaker counts nothing).
    """
    deadline = _current.get()
    if deadline is None:
        return cap
    seconds = deadline.cap(cap)
    if seconds < MIN_ATTEMPT_BUDGET:
        raise DeadlineExceeded(operation, deadline.budget)
    return seconds


@dataclass(frozen=True)
class Timeouts:
    connect: float
    query: float


def current_timeouts(connect: float | None = None, query: float | None = None) -> Timeouts:
    """Connect and query timeouts from settings, cut to the current call's remaining budget."""
    from .conf import get_config

    config = get_config()
    connect = float(config["CONNECT_TIMEOUT"] if connect is None else connect)
    query = float(config["QUERY_TIMEOUT"] if query is None else query)
    deadline = _current.get()
    if deadline is None:
        return Timeouts(connect, query)
    return Timeouts(deadline.cap(connect), deadline.cap(query))
