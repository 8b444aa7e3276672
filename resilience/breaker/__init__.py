"""The circuit breaker: the state machine (machine.py), what each state does (states.py), its
counts (counts.py), its announcements (events.py), manual control (control.py), what it
reports (snapshot.py) and the ways to wrap a call in it (wrappers.py).

``get_breaker`` lives in ``resilience.registry`` (also ``from resilience import get_breaker``):
the registry builds breakers from settings, so the breaker does not import it.
"""

from ..state import State
from .machine import CircuitBreaker
from .snapshot import BreakerSnapshot, Transition
from .states import Outcome, Permit, Probe
from .wrappers import decorate

__all__ = [
    "BreakerSnapshot",
    "CircuitBreaker",
    "Outcome",
    "Permit",
    "Probe",
    "State",
    "Transition",
    "decorate",
]
