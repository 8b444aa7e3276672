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

``bounded_call`` runs a probe that may hang (a blackholed database) in a
thread of its own and waits at most a given time; one probe per key is in
flight at a time, so a burst of health requests never piles up threads.

``DisclosingHealthCheckView`` shows each failure's message (hosts, ports,
errors, commands) only to a staff session or a caller with the bearer token
of ``settings.HEALTH_TOKEN`` (``resilience.disclosure``); everyone else gets
each check's name and status, in every format the library renders.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from health_check import HealthCheck
from health_check.base import HealthCheckResult
from health_check.exceptions import HealthCheckException, ServiceUnavailable
from health_check.views import HealthCheckView

from .breaker import all_breakers, get_breaker
from .clock import iso_utc
from .disclosure import amay_see_detail
from .errors import describe, scrub
from .fallback import read_copy
from .sharedcache import shared_cache

T = TypeVar("T")

HEARTBEAT_PREFIX = "resilience:heartbeat:"


def _iso(timestamp: float | None) -> str:
    return iso_utc(timestamp) or "unknown"


def one_line(text: str) -> str:
    """A driver's multi-line message on one line, scrubbed of secrets."""
    return " ".join(scrub(text).split())


def _unavailable(message: str) -> ServiceUnavailable:
    return ServiceUnavailable(one_line(message))


# --- breakers -------------------------------------------------------------------------


def describe_breaker(breaker: Any, now: float | None = None) -> str:
    """One line on a breaker that is not closed: state, since when, why, next probe."""
    snap = breaker.snapshot()
    now = breaker.store.now() if now is None else now
    state = str(breaker.public_state)
    parts = [f"circuit breaker {snap.name!r} is {state.replace('_', '-')}"]
    if snap.forced:
        parts[0] += " (forced)"
    if snap.opened_at:
        parts.append(f"opened at {_iso(snap.opened_at)}")
    if snap.last_error:
        parts.append(f"last error: {snap.last_error}")
    if snap.next_probe_at is not None and snap.next_probe_at > now:
        wait = snap.next_probe_at - now
        parts.append(f"next probe at {_iso(snap.next_probe_at)} (in {wait:.0f} s)")
    elif snap.next_probe_at is not None:
        parts.append("a probe may go through now")
    elif snap.forced:
        parts.append("no probe until it is reset")
    return one_line("; ".join(parts))


@dataclasses.dataclass
class BreakerState(HealthCheck):
    """A breaker's state (or every breaker's, when no name is given): closed is healthy.

    Reads the breaker's store only; never calls the dependency.
    """

    name: str | None = None

    def run(self) -> None:
        breakers = [get_breaker(self.name)] if self.name else list(all_breakers())
        problems = [describe_breaker(b) for b in breakers if str(b.public_state) != "closed"]
        if problems:
            raise _unavailable(" | ".join(problems))


# --- cache ----------------------------------------------------------------------------


@dataclasses.dataclass
class CacheRoundTrip(HealthCheck):
    """Set, get and delete a unique key: the cache stores, answers and forgets."""

    alias: str = "default"
    timeout: datetime.timedelta = dataclasses.field(
        default=datetime.timedelta(seconds=3), repr=False
    )

    def run(self) -> None:
        key = f"resilience:health:{uuid.uuid4().hex}"
        value = f"ok-{time.time()}"
        try:
            cache = caches[self.alias]
            cache.set(key, value, 30)
            if cache.get(key) != value:
                raise _unavailable(f"cache {self.alias!r} did not return the value just set")
            cache.delete(key)
            if cache.get(key) is not None:
                raise _unavailable(f"cache {self.alias!r} still holds a deleted key")
        except ServiceUnavailable:
            raise
        except Exception as exc:
            raise _unavailable(
                f"cache {self.alias!r} failed: {type(exc).__name__}: {describe(exc)}"
            ) from exc


# --- last-known-good copies and heartbeats ------------------------------------------------


def _age_check(
    what: str, when: float | None, max_age: float, missing: str, cache_alias: str
) -> None:
    """Ages on the clock the processes share: a host minutes off must not call stale fresh."""
    if when is None:
        raise _unavailable(missing)
    age = shared_cache(cache_alias).now() - when
    if age > max_age:
        raise _unavailable(f"{what} is {age:.0f} s old (at {_iso(when)}; limit {max_age:g} s)")


@dataclasses.dataclass
class FallbackFreshness(HealthCheck):
    """The last good copy of a named ``CachedFallback`` query is younger than ``max_age``.

    ``query`` is the fallback's name (``CachedFallback.name``). A copy grows
    old when nothing refreshes it: QuestDB failing, or no beat running.
    """

    query: str
    max_age: float = dataclasses.field(default=120.0, repr=False)
    cache_alias: str = dataclasses.field(default="default", repr=False)

    def run(self) -> None:
        try:
            copy = read_copy(self.query, self.cache_alias)
        except Exception as exc:
            raise _unavailable(f"cannot read the copy of {self.query!r}: {describe(exc)}") from exc
        cached_at = copy.cached_at if copy else None
        _age_check(
            f"the last good copy of {self.query!r}",
            cached_at.timestamp() if cached_at else None,
            self.max_age,
            f"no good copy of {self.query!r} yet: it has never been loaded",
            self.cache_alias,
        )


def record_heartbeat(name: str, *, cache_alias: str = "default", when: float | None = None) -> None:
    """Say that the periodic job ``name`` ran (kept without expiry), on the shared clock."""
    if when is None:
        when = shared_cache(cache_alias).now()
    caches[cache_alias].set(HEARTBEAT_PREFIX + name, when, None)


def last_heartbeat(name: str, *, cache_alias: str = "default") -> float | None:
    """When the periodic job ``name`` last ran (epoch seconds), or None."""
    return caches[cache_alias].get(HEARTBEAT_PREFIX + name)


@dataclasses.dataclass
class Heartbeat(HealthCheck):
    """A periodic job (``name``) recorded a heartbeat less than ``max_age`` seconds ago."""

    name: str
    max_age: float = dataclasses.field(default=60.0, repr=False)
    cache_alias: str = dataclasses.field(default="default", repr=False)
    hint: str = dataclasses.field(default="", repr=False)

    def run(self) -> None:
        try:
            when = last_heartbeat(self.name, cache_alias=self.cache_alias)
        except Exception as exc:
            raise _unavailable(f"cannot read heartbeat {self.name!r}: {describe(exc)}") from exc
        missing = f"no heartbeat from {self.name!r} yet"
        if self.hint:
            missing += f": {self.hint}"
        what = f"the last heartbeat of {self.name!r}"
        _age_check(what, when, self.max_age, missing, self.cache_alias)


# --- Redis --------------------------------------------------------------------------------


def redis_check(url: str, timeout: float = 1.0) -> tuple[type[HealthCheck], dict[str, Any]]:
    """django-health-check's Redis ping for ``url``, with connect and read timeouts.

    Its report names host, port and db only, never the URL's password.
    """
    from health_check.contrib.redis import Redis
    from redis.asyncio import Redis as RedisClient

    def client_factory() -> RedisClient:
        return RedisClient.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, retry_on_timeout=False
        )

    return Redis, {"client_factory": client_factory}


# --- bounded probes --------------------------------------------------------------------------


class _Flight:
    __slots__ = ("future", "pid")

    def __init__(self, future: Future, pid: int) -> None:
        self.future = future
        self.pid = pid


_flights: dict[str, _Flight] = {}
_flights_lock = threading.Lock()


def _forget_flights_after_fork() -> None:
    """A forked child has none of its parent's probe threads, nor a lock one may hold."""
    global _flights_lock
    _flights.clear()
    _flights_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_flights_after_fork)


def bounded_call(key: str, fn: Callable[[], T], timeout: float) -> T:
    """``fn()`` in a daemon thread; wait at most ``timeout`` s (``TimeoutError`` after).

    A probe still running is joined, not repeated: at most one thread per
    ``key`` talks to a hanging dependency, however many requests ask. The
    probe that outlives its caller still finishes, and its outcome still
    reaches the breaker.
    """
    pid = os.getpid()
    with _flights_lock:
        flight = _flights.get(key)
        if flight is None or flight.pid != pid or flight.future.done():
            flight = _flights[key] = _Flight(_start(key, fn), pid)
    try:
        return flight.future.result(timeout=timeout)
    except FutureTimeout:
        raise TimeoutError(f"no answer within {timeout:g} s") from None


def settle_probes(timeout: float) -> bool:
    """Wait up to ``timeout`` s for the probes still running (shutdown, tests); True if none is."""
    deadline = time.monotonic() + timeout
    with _flights_lock:
        futures = [flight.future for flight in _flights.values()]
    for future in futures:
        try:
            future.exception(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            return False
    return True


def _start(key: str, fn: Callable[[], T]) -> Future:
    future: Future = Future()

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            future.set_exception(exc)

    threading.Thread(target=target, name=f"health-probe:{key}", daemon=True).start()
    return future


PUBLIC_LABELS = ("alias", "name", "query")  # never a host, port, URL or client


def public_name(check: HealthCheck) -> str:
    """``QuestDB(alias='questdb')``, ``Redis``: the class and its harmless labels only."""
    labels = check.labels
    shown = ", ".join(f"{key}={labels[key]!r}" for key in PUBLIC_LABELS if key in labels)
    return f"{type(check).__name__}({shown})" if shown else type(check).__name__


class Undisclosed(HealthCheckException):
    """A failure shown by its kind alone ("Unavailable"), without its message."""

    def __init__(self, original: HealthCheckException) -> None:
        super().__init__("", timestamp=original.timestamp)
        self.message_type = original.message_type

    def __str__(self) -> str:
        return self.message_type


@dataclasses.dataclass(repr=False)
class Redacted(HealthCheck):
    """Runs ``inner`` as it is; reports its public name and, on failure, the kind only."""

    inner: HealthCheck

    def run(self) -> None:  # pragma: no cover - get_result runs the inner check instead
        raise NotImplementedError

    async def get_result(self, executor: Any = None) -> HealthCheckResult:
        result = await self.inner.get_result(executor)
        error = Undisclosed(result.error) if result.error else None
        return HealthCheckResult(check=self, error=error, time_taken=result.time_taken)

    def __repr__(self) -> str:
        return public_name(self.inner)

    @property
    def labels(self) -> dict[str, str]:
        labels = self.inner.labels
        return {"check": labels["check"]} | {k: labels[k] for k in PUBLIC_LABELS if k in labels}


class DisclosingHealthCheckView(HealthCheckView):
    """Failure detail for staff and holders of ``settings.<token_setting>``; names for the rest.

    Without a request (``manage.py health_check --no-http``, a shell) it shows everything.
    """

    token_setting = "HEALTH_TOKEN"
    disclose = True

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.disclose = await amay_see_detail(request, self.token_setting)
        return await super().get(request, *args, **kwargs)

    def get_checks(self) -> Iterator[HealthCheck]:
        for check in super().get_checks():
            yield check if self.disclose else Redacted(check)
