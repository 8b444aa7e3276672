"""The circuit breaker: the state machine (machine.py), its counts (counts.py), what it
reports (snapshot.py) and the ways to wrap a call in it (wrappers.py)."""

from ..registry import all_breakers, get_breaker
from ..state import State
from .machine import CircuitBreaker, Outcome, Permit, Probe
from .snapshot import BreakerSnapshot, Transition
from .wrappers import decorate

__all__ = [
    "BreakerSnapshot",
    "CircuitBreaker",
    "Outcome",
    "Permit",
    "Probe",
    "State",
    "Transition",
    "all_breakers",
    "decorate",
    "get_breaker",
]
