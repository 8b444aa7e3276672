"""Django signals for breaker events (metrics, admin, alerts hook in here).

The sender is the ``CircuitBreaker``; every signal passes ``name``. Sending
is skipped entirely when a signal has no receivers, so the hot path pays
nothing for them.

- ``state_changed(name, old, new, reason, snapshot)``: ``old``/``new`` are
  ``State`` values; ``reason`` says why ("failure threshold reached",
  "probe succeeded", "observed in shared store", "forced open" ...).
- ``call_rejected(name, error)``: an open breaker refused a call (a
  ``CircuitOpenError``).
- ``call_failed(name, exception)``: a call counted as a failure.
- ``call_succeeded(name)``: a call counted as a success.
- ``retry_attempted(name, operation, attempt, wait, exception)``: the retry
  policy is about to wait and try again.
- ``fallback_served(query, status, reason, cached_at)``: a ``CachedFallback``
  answered without fresh data: ``status`` is "degraded" (the last good copy)
  or "error" (no copy). The sender is the ``CachedFallback``.
"""

from django.dispatch import Signal

state_changed = Signal()
call_rejected = Signal()
call_failed = Signal()
call_succeeded = Signal()
retry_attempted = Signal()
fallback_served = Signal()
