"""The QuestDB health check, and the three health views: /ht/, /ht/ready/, /ht/live/.

``QuestDB`` runs ``SELECT 1`` through the guard (the "questdb" breaker),
answers within ``HEALTH_QUESTDB_TIMEOUT`` (0.8 s) even when QuestDB accepts
connections and never answers, and, while the breaker is open, reports its
state and next probe time without touching the network.

``/ht/`` (monitoring and alerting): everything, QuestDB, the copies' age
and the beat included.
``/ht/ready/`` (readiness, for a load balancer) and ``/ht/live/`` (liveness,
for an orchestrator's restart decision): only what this process owns, its
default database and its cache. Both stay 200 while QuestDB is down or the
beat stops: taking healthy web workers out of service or restarting them
cannot fix QuestDB, and would turn a database outage (which the dashboard
rides out on its last good copies) into a site outage.

``/ht/live/`` is asked every few seconds by every orchestrator, so it costs
almost nothing: each process answers from its own result of the same checks
while that is younger than ``LIVE_FOR`` (1 s), with no event loop, no
thread, no database or cache write per call.

Anonymous callers get each check's name and status; failure detail (hosts,
ports, errors) is for a staff session or ``Authorization: Bearer
<HEALTH_TOKEN>`` (``resilience.health.DisclosingHealthCheckView``). A
failing check answers 503, a malformed request a 400 that says why.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time
from typing import Any, ClassVar

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.signals import setting_changed
from django.db import connections
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.views import View
from health_check import Database, HealthCheck
from health_check.exceptions import ServiceUnavailable

from resilience import metricsdir
from resilience.disclosure import may_see_detail
from resilience.errors import CircuitOpenError, describe
from resilience.health import (
    BreakerState,
    CacheRoundTrip,
    DisclosingHealthCheckView,
    FallbackFreshness,
    Heartbeat,
    MetricsDirectory,
    bounded_call,
    describe_breaker,
    one_line,
    redis_check,
)
from resilience.registry import get_breaker

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
    """Monitoring: this process, QuestDB, the breakers, copies, beat, cache, Redis."""
    checks: list = [
        *process_checks(),
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
    if metricsdir.directory() is not None:
        checks.append(MetricsDirectory)
    return checks


def process_checks() -> list:
    """Readiness and liveness: only this process's own database and cache; never QuestDB."""
    return [(Database, {"alias": "default"}), (CacheRoundTrip, {"alias": "default"})]


class MonitoringView(DisclosingHealthCheckView):
    """/ht/: every check; 503 when one fails. ``?format=json`` or ``text`` as the library gives."""

    @property
    def checks(self) -> list:  # read per request, so settings changes apply
        return full_checks()


class ReadinessView(DisclosingHealthCheckView):
    """/ht/ready/: this process can serve (its database and cache); QuestDB and the beat aside."""

    @property
    def checks(self) -> list:
        return process_checks()


LIVE_FOR = 1.0  # seconds one process's liveness answer is given again
LIVE_ANSWERS_MAX = 32  # different answers kept (format, Accept, host, detail): a bound


@dataclasses.dataclass(frozen=True)
class _Answer:
    at: float  # monotonic
    status: int
    content: bytes
    headers: tuple[tuple[str, str], ...]

    def response(self) -> HttpResponse:
        response = HttpResponse(self.content, status=self.status)
        for name, value in self.headers:
            response[name] = value
        return response


class LivenessView(ReadinessView):
    """/ht/live/: the same checks, for restart decisions; 200 through a QuestDB outage.

    A synchronous view: Django runs the library's asynchronous one in a new
    event loop and thread per request, and its checks in new threads of
    their own, each with a new database connection; that made liveness
    dearer than a dashboard read. Here that happens at most once per
    ``LIVE_FOR`` seconds per process and kind of answer; the calls in
    between get the same answer, status and body.
    """

    answers: ClassVar[dict[tuple[Any, ...], _Answer]] = {}
    refreshing: ClassVar[threading.Lock] = threading.Lock()

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = View.dispatch(self, request, *args, **kwargs)
        patch_vary_headers(response, ["Accept"])  # as the library's dispatch does
        add_never_cache_headers(response)
        return response

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:  # type: ignore[override]
        detail = may_see_detail(request, self.token_setting)
        key = (request.GET.get("format"), request.headers.get("Accept"), request.get_host(), detail)
        answer = self.answers.get(key)
        if answer is not None and (
            time.monotonic() - answer.at < LIVE_FOR or not self.refreshing.acquire(blocking=False)
        ):
            return answer.response()  # young, or another thread is checking now
        locked = answer is not None
        try:
            response = async_to_sync(super().get)(request, *args, **kwargs)
            if hasattr(response, "render"):
                response.render()
            answer = _Answer(time.monotonic(), response.status_code, response.content,
                             tuple(response.items()))  # fmt: skip
            if len(self.answers) >= LIVE_ANSWERS_MAX:
                self.answers.clear()
            self.answers[key] = answer
        finally:
            if locked:
                self.refreshing.release()
        return answer.response()


@receiver(setting_changed)
def _forget_live_answers(**kwargs: Any) -> None:
    """A test that changes the cache or the database wants its own answer at once."""
    LivenessView.answers.clear()
