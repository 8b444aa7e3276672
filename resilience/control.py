"""An operator's actions on a breaker: reset, force open, force closed; confirmed or refused.

Shared by the admin's breaker page and ``manage.py breaker``, so both act and
say the same. An action is written to the breaker's store and then read back
from it (``BreakerStore.holds``): only a decision that landed is reported as
done and goes to the admin log. One that did not (the shared cache hangs or
is down) is withdrawn from this process, so that it is not published later
behind the operator's back, and the operator is told that nothing changed.

Which breakers an operator sees: those this process has used, those named in
``RESILIENCE["BREAKERS"]``, and those any process of the fleet reports to the
shared store (``known_breakers``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from .breaker import CircuitBreaker
from .logs import log_event
from .registry import all_breakers, get_breaker

logger = logging.getLogger("resilience.control")

ACTIONS = {
    "reset": ("reset", "Reset: closed, counts cleared"),
    "force-open": ("force_open", "Forced open: every call fails fast"),
    "force-closed": ("force_closed", "Forced closed: every call passes, failures ignored"),
}
MAX_REASON = 200


def clean_reason(text: str | None) -> str:
    """An operator's reason as it goes into the shared history: one short line."""
    return re.sub(r"\s+", " ", re.sub(r"[\x00-\x1f\x7f]", " ", text or "")).strip()[:MAX_REASON]


@dataclass(frozen=True)
class ActionResult:
    """What an operator's action did, as the page, the command and the admin log say it."""

    breaker: str
    action: str
    before: str
    after: str
    landed: bool  # read back from the store after writing
    shared: bool  # the store is shared by the fleet (else: this process only)
    message: str

    @property
    def label(self) -> str:
        return ACTIONS[self.action][1]


def apply_action(
    breaker: CircuitBreaker, action: str, *, actor: str, reason: str = ""
) -> ActionResult:
    """Reset, force open or force close ``breaker`` as ``actor``, then read the store back."""
    method, label = ACTIONS[action]
    store = breaker.store
    before = breaker.public_state
    act = getattr(breaker, method)
    if reason:  # the history says who in its own column
        act(f"{label.split(':')[0].lower()}: {reason}", actor=actor)
    else:
        act(actor=actor)
    decided = breaker.record
    landed = store.holds(breaker.name, decided)
    if not landed:
        store.withdraw(breaker.name, decided)
        store.sync(breaker.name, force=True)
        after = breaker.public_state
        log_event(logger, logging.WARNING, "resilience.operator_action_not_landed",
                  breaker=breaker.name, action=action, actor=actor, state=after,
                  consequence="withdrawn from this process: no process saw it")  # fmt: skip
        message = (
            f"Not done: {label.split(':')[0].lower()} did not reach the shared store "
            f"({_store_name(breaker)} did not answer), so no process saw it; the breaker "
            f"stays {after} as far as this process knows. Try again when the store answers."
        )
        return ActionResult(breaker.name, action, before, after, False, store.shared, message)
    message = f"{label} (was {before}, now {breaker.public_state})."
    if reason:
        message += f" Reason: {reason}"
    if not store.shared:
        message += " In this process only: the breaker's store is not shared."
    return ActionResult(
        breaker.name, action, before, breaker.public_state, True, store.shared, message
    )


def _store_name(breaker: CircuitBreaker) -> str:
    cache = getattr(breaker.store, "shared_cache", None)
    return f"cache {cache.alias!r}" if cache is not None else "the store"


def known_breakers() -> list[CircuitBreaker]:
    """This process's breakers, those named in settings, and those the fleet reports."""
    from . import fleet

    names = {breaker.name for breaker in all_breakers()}
    for name in fleet.reported_names() - names:
        get_breaker(name)
    return all_breakers()
