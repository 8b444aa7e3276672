"""Health checks for django-health-check 4.x (its v4 API: small dataclass checks).

List them on a ``health_check.views.HealthCheckView``; each ``run()`` raises
``ServiceUnavailable`` with a message that says what is wrong and never a
secret (messages are scrubbed):

- ``BreakerState``: each breaker's state; open or half-open is unavailable,
  with the last error and when the next probe is due.
- ``CacheRoundTrip``: set, get and delete a key in a cache.
- ``FallbackFreshness``: the age of a ``CachedFallback``'s last good copy
  against a limit (a stale copy means nothing has refreshed it).
- ``Heartbeat``: the age of a heartbeat a periodic job records with
  ``record_heartbeat(name)`` (the Celery beat refresh does) against a limit.
- ``redis_check(url)``: django-health-check's own Redis ping, with timeouts.
- ``MetricsDirectory``: the Prometheus multiprocess directory is fit and this
  process still writes its metrics (a warning, never a failure).

``bounded_call`` runs a probe that may hang (a blackholed database) in a
thread of its own and waits at most a given time; one probe per key is in
flight at a time, so a burst of health requests never piles up threads.

``DisclosingHealthCheckView`` shows each failure's message (hosts, ports,
errors, commands) only to a staff session or a caller with the bearer token
of ``settings.HEALTH_TOKEN`` (``resilience.disclosure``); everyone else gets
each check's name and status, in every format the library renders.

The package: ``messages`` (how a failure reads), ``breakers``, ``cache``
(round trip and Redis), ``ages`` (copies and heartbeats), ``probes``
(bounded calls) and ``redaction`` (who sees what).
"""

from ..optional import missing

try:
    import health_check  # noqa: F401 - the library this part needs
except ModuleNotFoundError as exc:
    raise missing("health", "resilience.health") from exc

from .ages import HEARTBEAT_PREFIX, FallbackFreshness, Heartbeat, last_heartbeat, record_heartbeat
from .breakers import BreakerState, describe_breaker
from .cache import CacheRoundTrip, redis_check
from .messages import one_line
from .metrics import MetricsDirectory
from .probes import bounded_call, settle_probes
from .redaction import PUBLIC_LABELS, DisclosingHealthCheckView, Redacted, Undisclosed, public_name

__all__ = [
    "HEARTBEAT_PREFIX",
    "PUBLIC_LABELS",
    "BreakerState",
    "CacheRoundTrip",
    "DisclosingHealthCheckView",
    "FallbackFreshness",
    "Heartbeat",
    "MetricsDirectory",
    "Redacted",
    "Undisclosed",
    "bounded_call",
    "describe_breaker",
    "last_heartbeat",
    "one_line",
    "public_name",
    "record_heartbeat",
    "redis_check",
    "settle_probes",
]
