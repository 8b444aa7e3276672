"""resilience: a circuit breaker whose state processes share, retry within a deadline,
and errors that always say what failed. A reusable Django app.

The public API, importable from here::

    from resilience import get_breaker, guarded, CircuitOpenError, OperationFailed
"""

__version__ = "0.2.0"  # the distribution's version (pyproject.toml reads it; see CHANGELOG.md)

from .breaker import BreakerSnapshot, CircuitBreaker, Outcome, Probe, State, Transition
from .clock import Clock, FakeClock, SystemClock, Timebase
from .conf import BreakerConfig
from .deadline import Deadline, current_deadline, current_timeouts, remaining_budget, timeout
from .errors import (
    CircuitOpenError,
    DeadlineExceeded,
    GuardedCallError,
    Kind,
    OperationFailed,
    classify,
    describe,
    is_connection_error,
    is_retryable,
    scrub,
    was_attempted,
)
from .guard import Guard, guarded, guarded_async
from .registry import all_breakers, get_breaker, reset_registry
from .retry import RetryPolicy
from .sharedcache import CacheUnavailable, SharedCache, shared_cache
from .stores import BreakerStore, CacheStore, LocalStore

__all__ = [
    "BreakerConfig",
    "BreakerSnapshot",
    "BreakerStore",
    "CacheStore",
    "CacheUnavailable",
    "CircuitBreaker",
    "CircuitOpenError",
    "Clock",
    "Deadline",
    "DeadlineExceeded",
    "FakeClock",
    "Guard",
    "GuardedCallError",
    "Kind",
    "LocalStore",
    "OperationFailed",
    "Outcome",
    "Probe",
    "RetryPolicy",
    "SharedCache",
    "State",
    "SystemClock",
    "Timebase",
    "Transition",
    "all_breakers",
    "classify",
    "current_deadline",
    "current_timeouts",
    "describe",
    "get_breaker",
    "guarded",
    "guarded_async",
    "is_connection_error",
    "is_retryable",
    "remaining_budget",
    "reset_registry",
    "scrub",
    "shared_cache",
    "timeout",
    "was_attempted",
]
