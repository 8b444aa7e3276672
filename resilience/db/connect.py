"""Connects held to their budget to the millisecond, and closed the moment they are given up.

psycopg (3.3) counts its connect_timeout in whole seconds and raises any
value under 2 to 2. Its connect is non-blocking underneath, though: libpq
hands over a socket at once and psycopg waits on it. ``BoundedConnection``
watches that socket with the watchdog, which shuts it when the budget runs
out (psycopg wakes at once and fails), and finishes the half-made
connection right there. Nothing is left for the garbage collector: an
abandoned connect used to hold its socket until a full collection (600
calls to a server that never answered left 374 descriptors open), and a
helper thread for ever after psycopg's own 2 s.

Django's backend connects through ``DatabaseWrapper.Database.connect``;
``bounded_psycopg`` is psycopg with that one function swapped, for the
guarded engines to set as their ``Database``. A host name that takes long to
resolve is the one wait this cannot cut: libpq resolves before it has a
socket.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg

from ..deadline import MIN_ATTEMPT_BUDGET
from .watchdog import Watchdog, watchdog

T = TypeVar("T")


@dataclass(frozen=True)
class Budget:
    """One connect's deadline: ``due`` on the watchdog's clock."""

    due: float
    seconds: float
    timeout: Callable[[float], BaseException]  # the error to raise when it runs out
    watchdog: Watchdog


_budget: ContextVar[Budget | None] = ContextVar("resilience_connect_budget", default=None)


def connect_within(
    connect: Callable[[], T],
    seconds: float,
    timeout: Callable[[float], BaseException],
    *,
    dog: Watchdog | None = None,
) -> T:
    """Run ``connect()`` here, its ``BoundedConnection`` connects held to ``seconds`` in all;
    ``timeout(seconds)`` is raised when they run out."""
    dog = dog or watchdog
    budget = Budget(dog.clock.monotonic() + seconds, seconds, timeout, dog)
    token = _budget.set(budget)
    try:
        return connect()
    finally:
        _budget.reset(token)


class BoundedConnection(psycopg.Connection):
    """psycopg's connection whose connect keeps to the budget ``connect_within`` set."""

    @classmethod
    def _connect_gen(cls, conninfo: str = "", **kwargs: Any):  # type: ignore[override]
        # psycopg calls this once per host address it tries; each is one generator
        # yielding (fileno, wait) until the connection is made.
        inner = super()._connect_gen(conninfo, **kwargs)
        budget = _budget.get()
        try:
            if budget is None:
                return (yield from inner)
            return (yield from _bounded(inner, budget))
        finally:
            # Given up on (our timeout, an error, the caller gone): libpq's half-made
            # connection is dropped with the generator now, and its socket closed.
            inner.close()


def _bounded(inner: Generator[Any, Any, Any], budget: Budget) -> Generator[Any, Any, Any]:
    """Drive psycopg's connect generator, its current socket watched until ``budget.due``."""
    dog, clock = budget.watchdog, budget.watchdog.clock
    watched: tuple[int, int] | None = None  # (fileno, ticket)

    def unwatch() -> bool:
        nonlocal watched
        fired = watched is not None and dog.release(watched[1])
        watched = None
        return fired

    try:
        try:
            fileno, wait = next(inner)
            while True:
                if watched is None or watched[0] != fileno:
                    if unwatch() or budget.due - clock.monotonic() < MIN_ATTEMPT_BUDGET:
                        raise budget.timeout(budget.seconds)
                    left = budget.due - clock.monotonic()
                    watched = (fileno, dog.watch(fileno, left))
                ready = yield fileno, wait
                fileno, wait = inner.send(ready)
        except StopIteration as done:
            connection = done.value
            if unwatch():  # made just as the socket was shut: it is no use
                connection.close()
                raise budget.timeout(budget.seconds) from None
            return connection
        except psycopg.Error as exc:
            if unwatch():
                raise budget.timeout(budget.seconds) from exc
            raise
    finally:
        unwatch()


class _BoundedPsycopg:
    """psycopg as a Django backend reaches it (``DatabaseWrapper.Database``), but connecting
    through ``BoundedConnection``. Everything else is psycopg's own."""

    def __getattr__(self, name: str) -> Any:
        return getattr(psycopg, name)

    @staticmethod
    def connect(*args: Any, **kwargs: Any) -> BoundedConnection:
        return BoundedConnection.connect(*args, **kwargs)


bounded_psycopg = _BoundedPsycopg()
