"""Prometheus metrics for breakers, retries, fallbacks and queries (prometheus-client).

Two kinds of figures, fed two ways:

- Events, counted where they happen (every process counts its own):
  breaker transitions, calls by outcome, retry attempts (from the Django
  signals of ``resilience.signals``), fallback serves (from the
  ``resilience.fallback`` log events) and query latency (a Django
  execute wrapper on the watched database aliases).
- State, read at scrape time by ``StateCollector``: each breaker's state and
  consecutive failures (``breaker.snapshot()``, i.e. its store) and the age
  of each last-known-good copy (the cache). Breaker state shared through a
  ``CacheStore`` and copies in a shared cache read the same from any
  process, so whichever worker answers the scrape tells the truth.

Several worker processes: when ``PROMETHEUS_MULTIPROC_DIR`` is set (before
the processes start, and emptied at each deployment start), counters and
the histogram go to per-process files there and ``/metrics`` adds them up
across every process writing to that directory (web workers and Celery
workers alike), prometheus_client's multiprocess mode. Without it, a plain
registry reports the answering process alone: right for one process.

``install()`` connects everything once per process; call it from an
``AppConfig.ready()``. A metrics directory that is full, read-only or
missing never hurts a request: see resilience/metricsdir.py.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.db.backends.signals import connection_created
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import View

from .optional import missing

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.multiprocess import MultiProcessCollector
except ModuleNotFoundError as exc:
    raise missing("metrics", "resilience.metrics") from exc

from . import metricsdir, signals
from .disclosure import may_see_detail
from .fallback import read_copy
from .logs import log_failure
from .registry import all_breakers
from .sharedcache import shared_cache
from .signals import observer_failed

logger = logging.getLogger("resilience.metrics")

STATES = ("closed", "open", "half_open")

TRANSITIONS = Counter(
    "resilience_breaker_transitions",
    "Breaker state changes made by this process (changes seen in a shared store are not counted"
    " again).",
    ["breaker", "from_state", "to_state"],
)
# Resilience4j-micrometer's names where the idea is the same: calls by kind, the window's
# failure_rate and slow_call_rate (see StateCollector).
CALLS = Counter(
    "resilience_breaker_calls",
    "Calls through a breaker by kind: successful, failed (counted against it), ignored"
    " (counted as nothing: IGNORE, never attempted, cancelled), not_permitted (refused).",
    ["breaker", "kind"],
)
RETRIES = Counter(
    "resilience_retry_attempts",
    "Retries of a guarded operation after a connection error (the first attempt not counted).",
    ["breaker", "operation"],
)
FALLBACK_SERVED = Counter(
    "resilience_fallback_served",
    "Answers given without fresh data: degraded (the last good copy) or error (no copy).",
    ["query", "status"],
)
QUERY_LATENCY = Histogram(
    "resilience_query_duration_seconds",
    "Duration of each SQL statement on a watched database alias, by outcome.",
    ["database", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def multiprocess_dir() -> str | None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return path if path and os.path.isdir(path) else None


# --- state read at scrape time --------------------------------------------------------------


class StateCollector:
    """Breaker states and copy ages, read when Prometheus scrapes (never cached)."""

    def __init__(self, fallbacks: Callable[[], Iterable[str]] | Iterable[str] = ()) -> None:
        self.fallbacks = fallbacks
        self.cache_alias = "default"

    def fallback_names(self) -> list[str]:
        names = self.fallbacks() if callable(self.fallbacks) else self.fallbacks
        return list(names)

    def describe(self) -> list:
        return []  # dynamic: nothing to check at registration time

    def collect(self) -> Iterable[GaugeMetricFamily]:
        state = GaugeMetricFamily(
            "resilience_breaker_state",
            "1 for the breaker's current state (closed, open, half_open), 0 for the others.",
            labels=["breaker", "state"],
        )
        forced = GaugeMetricFamily(
            "resilience_breaker_forced", "1 when an operator forced the breaker's state.",
            labels=["breaker"],
        )  # fmt: skip
        failures = GaugeMetricFamily(
            "resilience_breaker_consecutive_failures",
            "Consecutive failures counted towards opening the breaker.",
            labels=["breaker"],
        )
        next_probe = GaugeMetricFamily(
            "resilience_breaker_next_probe_timestamp_seconds",
            "When an open breaker lets its next probe through (absent when closed).",
            labels=["breaker"],
        )
        failure_rate = GaugeMetricFamily(
            "resilience_breaker_failure_rate",
            "Percent of the calls of the last WINDOW seconds that failed, every process sharing"
            " the store (-1 under MINIMUM_CALLS; absent when no window rule is on).",
            labels=["breaker"],
        )
        slow_call_rate = GaugeMetricFamily(
            "resilience_breaker_slow_call_rate",
            "Percent of the calls of the last WINDOW seconds slower than SLOW_CALL_DURATION"
            " (-1 under MINIMUM_CALLS; absent when no window rule is on).",
            labels=["breaker"],
        )
        probes = GaugeMetricFamily(
            "resilience_breaker_half_open_successes",
            "Probes of the current half-open state that succeeded, towards SUCCESS_THRESHOLD"
            " (absent unless half-open).",
            labels=["breaker"],
        )
        for breaker in all_breakers():
            try:
                snap = breaker.snapshot()
            except Exception as exc:  # noqa: BLE001 - one broken store must not hide the rest
                self._scrape_error("breaker", breaker.name, exc)
                continue
            for name in STATES:
                state.add_metric([snap.name, name], 1.0 if snap.public_state == name else 0.0)
            forced.add_metric([snap.name], 1.0 if snap.forced else 0.0)
            failures.add_metric([snap.name], float(snap.failure_count))
            if snap.next_probe_at is not None:
                next_probe.add_metric([snap.name], float(snap.next_probe_at))
            rules = (snap.failure_rate_threshold, snap.slow_call_rate_threshold)
            if any(rule is not None for rule in rules) and snap.public_state == "closed":
                enough = snap.window_calls >= snap.minimum_calls
                failure_rate.add_metric([snap.name], (snap.failure_rate or 0.0) if enough else -1)
                slow_call_rate.add_metric(
                    [snap.name], (snap.slow_call_rate or 0.0) if enough else -1
                )
            if snap.public_state == "half_open":
                probes.add_metric([snap.name], float(snap.probe_successes))
        yield from (state, forced, failures, next_probe, failure_rate, slow_call_rate, probes)

        age = GaugeMetricFamily(
            "resilience_fallback_age_seconds",
            "Seconds since each query's dependency last answered, empty or not (absent when it"
            " never has).",
            labels=["query"],
        )
        for name in self.fallback_names():
            try:
                copy = read_copy(name, self.cache_alias)
            except Exception as exc:  # noqa: BLE001 - a dead cache leaves the ages out
                self._scrape_error("fallback", name, exc)
                break
            if copy is not None:
                now = shared_cache(self.cache_alias).now()  # the clock the processes share
                age.add_metric([name], max(0.0, now - copy.last_answer_at.timestamp()))
        yield age

    @staticmethod
    def _scrape_error(kind: str, name: str, exc: Exception) -> None:
        log_failure(logger, "resilience.metrics.scrape_error", exc,
                    operation=f"scrape {kind} {name}", level=logging.WARNING)  # fmt: skip


# --- events -------------------------------------------------------------------------------


def _write(metric: Any, *labels: str, observe: float | None = None) -> None:
    """Count (or observe) one event, unless this process dropped its metrics.

    A metrics file that cannot be allocated (a full or read-only disk) raises
    an OSError here: the process drops its metrics, says so once, and the
    request that counted goes on (resilience/metricsdir.py).
    """
    if metricsdir.dropped() is not None:
        return
    try:
        child = _child(metric, *labels)
        if observe is None:
            child.inc()
        else:
            child.observe(observe)
    except OSError as exc:
        metricsdir.drop("a metrics file could not be written", exc)


def _on_state_changed(sender: Any, name: str, old: Any, new: Any, **kwargs: Any) -> None:
    transition = kwargs.get("transition")
    if transition is not None and getattr(transition, "observed", False):
        return  # the process that made it counted it
    _write(TRANSITIONS, name, str(old), str(new))


_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once: it is on every call's path (and every
    statement's), where prometheus_client's own lookup takes a lock and checks each label."""
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def _on_call_succeeded(sender: Any, name: str, **kwargs: Any) -> None:
    _write(CALLS, name, "successful")


def _on_call_failed(sender: Any, name: str, **kwargs: Any) -> None:
    _write(CALLS, name, "failed")


def _on_call_ignored(sender: Any, name: str, **kwargs: Any) -> None:
    _write(CALLS, name, "ignored")


def _on_call_rejected(sender: Any, name: str, **kwargs: Any) -> None:
    _write(CALLS, name, "not_permitted")


def _on_retry(sender: Any, name: str, operation: str | None = None, **kwargs: Any) -> None:
    _write(RETRIES, name, operation or "unknown")


def _on_fallback_served(sender: Any, query: str, status: str, **kwargs: Any) -> None:
    _write(FALLBACK_SERVED, query, status)


def _timer(alias: str) -> Callable[..., Any]:
    def execute_wrapper(execute, sql, params, many, context):  # Django's signature
        started = time.perf_counter()
        outcome = "error"
        try:
            result = execute(sql, params, many, context)
            outcome = "ok"
            return result
        finally:
            try:  # a metric that cannot be written must not fail the query it times
                _write(QUERY_LATENCY, alias, outcome, observe=time.perf_counter() - started)
            except Exception as exc:  # noqa: BLE001 - reported, never raised
                observer_failed(f"{__name__}.QUERY_LATENCY", exc)

    execute_wrapper.resilience_timer = True  # type: ignore[attr-defined]
    return execute_wrapper


_timed_aliases: set[str] = set()


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.alias not in _timed_aliases:
        return
    if not any(getattr(w, "resilience_timer", False) for w in connection.execute_wrappers):
        connection.execute_wrappers.append(_timer(connection.alias))


_installed = threading.Lock()
_state: dict[str, Any] = {"done": False}


def install(*, time_databases: Iterable[str] = ()) -> None:
    """Connect the event feeds (idempotent); time statements on ``time_databases`` aliases."""
    _timed_aliases.update(time_databases)
    with _installed:
        if _state["done"]:
            return
        _state["done"] = True
    if metricsdir.directory() is not None:
        metricsdir.allocate_before_mapping()
        metricsdir.check_at_startup()
    uid = "resilience.metrics"
    signals.state_changed.connect(_on_state_changed, dispatch_uid=f"{uid}.state")
    signals.call_succeeded.connect(_on_call_succeeded, dispatch_uid=f"{uid}.success")
    signals.call_failed.connect(_on_call_failed, dispatch_uid=f"{uid}.failure")
    signals.call_rejected.connect(_on_call_rejected, dispatch_uid=f"{uid}.rejected")
    signals.call_ignored.connect(_on_call_ignored, dispatch_uid=f"{uid}.ignored")
    signals.retry_attempted.connect(_on_retry, dispatch_uid=f"{uid}.retry")
    connection_created.connect(_on_connection_created, dispatch_uid=f"{uid}.timer")
    signals.fallback_served.connect(_on_fallback_served, dispatch_uid=f"{uid}.fallback")


# --- exposition ---------------------------------------------------------------------------


def scrape_registry(collector: StateCollector) -> CollectorRegistry:
    """What one scrape exposes: every process's files in multiprocess mode, else this one's."""
    registry = CollectorRegistry(auto_describe=False)
    if path := multiprocess_dir():
        MultiProcessCollector(registry, path=path)
    else:
        registry.register(_DefaultRegistry())
    registry.register(collector)
    return registry


class _DefaultRegistry:
    """prometheus_client's process-wide registry (our counters, process and GC figures)."""

    def collect(self) -> Iterable[Any]:
        return REGISTRY.collect()

    def describe(self) -> list:
        return []


class MetricsView(View):
    """``GET /metrics``: the Prometheus text format (OpenMetrics when the scraper asks for it).

    For a staff session or ``Authorization: Bearer <settings.METRICS_TOKEN>``
    only: 401 (403 for a signed-in non-staff user) to anyone else.
    ``fallbacks``: the names of the ``CachedFallback`` queries whose copy
    ages to report (an iterable or a callable returning one).
    """

    fallbacks: Callable[[], Iterable[str]] | Iterable[str] = ()
    http_method_names = ["get", "head", "options"]
    token_setting = "METRICS_TOKEN"

    def get(self, request: HttpRequest) -> HttpResponse:
        if not may_see_detail(request, self.token_setting):
            signed_in = getattr(getattr(request, "user", None), "is_authenticated", False)
            response = JsonResponse(
                {"error": f"Metrics are for staff: sign in with a staff account, or send "
                          f"Authorization: Bearer <{self.token_setting}>."},
                status=403 if signed_in else 401,
            )  # fmt: skip
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        registry = scrape_registry(StateCollector(self.fallbacks))
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = HttpResponse(encode(registry), content_type=content_type)
        response["Cache-Control"] = "no-store"
        return response
