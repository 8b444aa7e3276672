"""resilience: a circuit breaker whose state processes share, retry within a deadline,
and errors that always say what failed. A reusable Django app.

The public API, importable from here::

    from resilience import get_breaker, guarded, CircuitOpenError, OperationFailed
"""

from .breaker import BreakerSnapshot, CircuitBreaker, Outcome, State, Transition
from .clock import Clock, FakeClock, SystemClock
from .deadline import Deadline, current_deadline, current_timeouts, remaining_budget
from .errors import (
    CircuitOpenError,
    DeadlineExceeded,
    GuardedCallError,
    OperationFailed,
    describe,
    is_connection_error,
    scrub,
)
from .guard import Guard, guarded, guarded_async
from .registry import all_breakers, get_breaker, reset_registry
from .retry import RetryPolicy
from .stores import BreakerStore, CacheStore, LocalStore

__all__ = [
    "BreakerSnapshot",
    "BreakerStore",
    "CacheStore",
    "CircuitBreaker",
    "CircuitOpenError",
    "Clock",
    "Deadline",
    "DeadlineExceeded",
    "FakeClock",
    "Guard",
    "GuardedCallError",
    "LocalStore",
    "OperationFailed",
    "Outcome",
    "RetryPolicy",
    "State",
    "SystemClock",
    "Transition",
    "all_breakers",
    "current_deadline",
    "current_timeouts",
    "describe",
    "get_breaker",
    "guarded",
    "guarded_async",
    "is_connection_error",
    "remaining_budget",
    "reset_registry",
    "scrub",
]
