"""A time budget for one guarded call, visible to the code running inside it.

The guard opens a ``Deadline`` and makes it current (a context variable, so
threads and asyncio tasks each see their own). Whatever runs inside (a
database backend, an HTTP client) asks ``remaining_budget()`` or
``current_timeouts()`` to size its connect and statement timeouts, so the
whole call (attempts, waits and timeouts) fits the budget. A guard nested in
another never outlives the outer one's budget.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass

from .clock import SYSTEM_CLOCK, Clock
from .errors import DeadlineExceeded

_current: ContextVar[Deadline | None] = ContextVar("resilience_deadline", default=None)


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
