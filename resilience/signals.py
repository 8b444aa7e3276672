"""Django signals for breaker events (metrics, admin, alerts hook in here).

The sender is the ``CircuitBreaker``; every signal passes ``name``. Sending
is skipped entirely when a signal has no receivers, so the hot path pays
nothing for them. A receiver that raises never fails, delays or reclassifies
the call it observes: its error is logged (once a minute per receiver) and
the call goes on. A metrics file that vanished must not turn a good query
into a 503.

- ``state_changed(name, old, new, reason, transition)``: ``old``/``new`` are
  ``State`` values; ``reason`` says why.
- ``call_rejected(name, error)``: an open breaker refused a call (a
  ``CircuitOpenError``).
- ``call_failed(name, exception)``: a call counted as a failure.
- ``call_succeeded(name)``: a call counted as a success.
- ``call_ignored(name, exception)``: a call that counted as nothing (IGNORE, a
  call never attempted, a cancellation).
- ``retry_attempted(name, operation, attempt, wait, exception)``: the retry
  policy is about to wait and try again.
- ``fallback_served(query, status, reason, cached_at)``: a ``CachedFallback``
  answered without fresh data: ``status`` is "degraded" (the last good copy)
  or "error" (no copy). The sender is the ``CachedFallback``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django import dispatch

from .logs import log_failure

logger = logging.getLogger("resilience.signals")

QUIET_FOR = 60.0  # seconds between two reports of the same failing receiver


class Signal(dispatch.Signal):
    """A signal whose receivers observe; they cannot change what they observe."""

    def emit(self, sender: Any, **named: Any) -> None:
        """``send_robust``, for callers on the hot path: nothing happens without receivers."""
        if self.receivers:
            self.send_robust(sender, **named)

    def _log_robust_failure(self, receiver: Any, err: Exception) -> None:
        observer_failed(getattr(receiver, "__qualname__", None) or repr(receiver), err)


_reported: dict[str, float] = {}
_reported_lock = threading.Lock()


def observer_failed(name: str, err: Exception) -> None:
    """Say that an observer (a receiver, a metric) failed; once a minute per observer."""
    now = time.monotonic()
    with _reported_lock:
        if now - _reported.get(name, -QUIET_FOR) < QUIET_FOR:
            return
        _reported[name] = now
    log_failure(
        logger,
        "resilience.observer_failed",
        err,
        operation=name,
        level=logging.WARNING,
        consequence="the observed call is unaffected; this observer missed the event",
    )


state_changed = Signal()
call_rejected = Signal()
call_failed = Signal()
call_succeeded = Signal()
call_ignored = Signal()
retry_attempted = Signal()
fallback_served = Signal()
