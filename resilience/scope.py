"""One request's budget and what it has spent: the promise "nobody waits more than 3 s" holds
against every part, the shared cache included.

The middleware opens a ``RequestScope`` per request (a context variable, so
threads and asyncio tasks each see their own) beside the request's
``Deadline``. The shared cache charges each round trip to it, so that when
the budget runs out the answer can say where it went ("the shared cache took
2.3 s of the 2.5 s"), never "QuestDB is unavailable" for a QuestDB that was
not asked. A page that reads several copies reads them in one round trip and
leaves them here (``copies``) for the sections that follow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from .deadline import Deadline, activate, deactivate

_current: ContextVar[RequestScope | None] = ContextVar("resilience_request", default=None)
# Seconds after the budget in which the cache may still be read: the last good copy is
# what a request that ran out of time serves, and an old copy beats an error page.
GRACE = 0.4


@dataclass
class RequestScope:
    """What one request has spent on the shared cache, and the copies it already read."""

    deadline: Deadline
    cache_seconds: float = 0.0  # wall time spent waiting on the shared cache
    cache_round_trips: int = 0
    cache_gave_up: str | None = None  # why a cache operation was abandoned, if one was
    copies: dict[str, Any] = field(default_factory=dict)  # stored copies read ahead, by key
    looked: set[str] = field(default_factory=set)  # breakers whose shared state it read

    def cache_time_left(self) -> float:
        """Seconds the cache may still take: the budget's rest, and the grace after it."""
        deadline = self.deadline
        return deadline.expires_at + GRACE - deadline.clock.monotonic()

    def charge(self, seconds: float) -> None:
        self.cache_seconds += seconds
        self.cache_round_trips += 1

    def cache_to_blame(self) -> str | None:
        """Why this request's budget ran short because of the cache, in words; None if not."""
        budget = self.deadline.budget
        if self.cache_gave_up is None and self.cache_seconds < 0.25 * budget:
            return None
        spent = f"the shared cache took {self.cache_seconds:.1f} s of this request's {budget:g} s"
        return f"{spent} ({self.cache_gave_up})" if self.cache_gave_up else spent


def current_scope() -> RequestScope | None:
    return _current.get()


@contextlib.contextmanager
def request_scope(budget: float) -> Iterator[RequestScope]:
    """The request's deadline made current, and its scope with it."""
    scope = RequestScope(Deadline(budget))
    tokens = activate(scope.deadline), _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(tokens[1])
        deactivate(tokens[0])
