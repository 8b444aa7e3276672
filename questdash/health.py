"""The QuestDB health check, and the two health views: /ht/ and /ht/live/.

``QuestDB`` runs ``SELECT 1`` through the guard (the "questdb" breaker),
answers within ``HEALTH_QUESTDB_TIMEOUT`` (0.8 s) even when QuestDB accepts
connections and never answers, and, while the breaker is open, reports its
state and next probe time without touching the network.

``/ht/`` (readiness, for monitoring): everything, QuestDB included.
``/ht/live/`` (liveness, for an orchestrator's restart decision): only what
this process owns, its default database and its cache. It stays 200 while
QuestDB is down: restarting healthy web workers cannot fix QuestDB, and
would turn a database outage (which the dashboard rides out on its last
good copies) into a site outage.
"""

from __future__ import annotations

import dataclasses
import datetime

from django.conf import settings
from django.db import connections
from health_check import Database, HealthCheck
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

from resilience.breaker import get_breaker
from resilience.errors import CircuitOpenError, describe
from resilience.health import (
    BreakerState,
    CacheRoundTrip,
    FallbackFreshness,
    Heartbeat,
    bounded_call,
    describe_breaker,
    one_line,
    redis_check,
)

from .db.guard import questdb_call
from .db.router import QUESTDB_ALIAS
from .sections import LOADERS, section
from .tasks import HEARTBEAT


def _timeout() -> datetime.timedelta:
    return datetime.timedelta(seconds=settings.HEALTH_QUESTDB_TIMEOUT)


def select_one(alias: str = QUESTDB_ALIAS) -> tuple:
    """``SELECT 1`` on a fresh connection, through the guard, without retries."""

    def query() -> tuple:
        connection = connections[alias]
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                return cursor.fetchone()
        finally:
            connection.close()  # this thread's own connection: never left open

    return questdb_call("health_check", query, retry=False)


@dataclasses.dataclass
class QuestDB(HealthCheck):
    """QuestDB answers ``SELECT 1`` in time, through its circuit breaker."""

    alias: str = QUESTDB_ALIAS
    timeout: datetime.timedelta = dataclasses.field(default_factory=_timeout, repr=False)

    def run(self) -> None:
        breaker = get_breaker(self.alias)
        if not breaker.allows_traffic():
            raise ServiceUnavailable(describe_breaker(breaker))
        seconds = self.timeout.total_seconds()
        try:
            row = bounded_call(f"questdb:{self.alias}", lambda: select_one(self.alias), seconds)
        except CircuitOpenError:
            raise ServiceUnavailable(describe_breaker(breaker)) from None
        except TimeoutError:
            raise ServiceUnavailable(
                f"QuestDB did not answer SELECT 1 within {seconds:g} s"
                f" (circuit breaker {breaker.public_state})"
            ) from None
        except Exception as exc:  # noqa: BLE001 - every failure is the finding
            raise ServiceUnavailable(
                one_line(
                    f"SELECT 1 failed: {describe(exc)} (circuit breaker {breaker.public_state})"
                )
            ) from None
        if tuple(row or ()) != (1,):
            raise ServiceUnavailable(f"SELECT 1 returned {row!r}")


def section_queries() -> list[str]:
    """The names of the dashboard's cached-fallback queries, one per section."""
    return [section(slug).name for slug in LOADERS]


def full_checks() -> list:
    """Readiness: this process, QuestDB, the breakers, copies, beat, cache, Redis."""
    checks: list = [
        (Database, {"alias": "default"}),
        (CacheRoundTrip, {"alias": "default"}),
        QuestDB,
        (BreakerState, {"name": QUESTDB_ALIAS}),
        *[
            (FallbackFreshness, {"query": name, "max_age": settings.HEALTH_FRESHNESS_MAX_AGE})
            for name in section_queries()
        ],
        (
            Heartbeat,
            {
                "name": HEARTBEAT,
                "max_age": settings.HEALTH_HEARTBEAT_MAX_AGE,
                "hint": "is `celery -A questdash worker -B` running?",
            },
        ),
    ]
    if settings.REDIS_URL:
        checks.append(redis_check(settings.REDIS_URL))
    return checks


def live_checks() -> list:
    """Liveness: only this process's own database and cache; never QuestDB."""
    return [(Database, {"alias": "default"}), (CacheRoundTrip, {"alias": "default"})]


class ReadinessView(HealthCheckView):
    """/ht/: every check; 500 when one fails. ``?format=json`` or ``text`` as the library gives."""

    @property
    def checks(self) -> list:  # read per request, so settings changes apply
        return full_checks()


class LivenessView(HealthCheckView):
    """/ht/live/: this process, the default database and the cache; 200 through a QuestDB outage."""

    @property
    def checks(self) -> list:
        return live_checks()
