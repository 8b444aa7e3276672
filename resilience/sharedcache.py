"""A Django cache that processes share: a hung server costs a request one bounded wait, no more.

The breaker's ``CacheStore`` and the fallback's last good copies both live
in Django's cache (Redis in production). When that cache hangs (a paused
redis-server answers nothing until ``socket_timeout``), every operation
would wait the full timeout, and a request makes several. So each process
keeps one ``SharedCache`` per alias:

- the first operation that fails marks the cache down and says so once;
- while it is down, operations raise ``CacheUnavailable`` at once, without
  touching the network, and callers carry on with what they know locally;
- after ``retry_interval`` one background thread (never a request) tries
  the cache again; when it answers, the cache is up and that is said once.

It also keeps the ``Timebase`` for times that cross processes: Redis's own
clock (``TIME``) where the cache is Redis, this host's clock otherwise.

Slow is not down, but it is not free either: inside a request (a
``RequestScope``) every operation is charged to the request and bounded by
``operation_timeout`` and by what is left of the request's budget, so a cache
that answers late, or a SQLite database held under another process's write
lock, costs a request at most that, never its whole budget and more (the
last copies may still be read in a short grace after the budget: an old copy
beats an error page). An operation given up on is left to finish in its
thread: if the cache is really gone, it fails there and marks the cache down
for everyone. Round trips are timed (``latency``, a moving average): a
cache slower than ``SLOW_ROUND_TRIP`` is ``slow``, and writes whose result
nobody waits for (``write``) are then made behind the request, by one
writer thread, the newest value per key.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from django.core.cache import caches

from .clock import SYSTEM_CLOCK, Clock, Timebase
from .errors import describe
from .logs import log_event
from .scope import RequestScope, current_scope

logger = logging.getLogger("resilience.cache")

T = TypeVar("T")

PROBE_KEY = "resilience:cache-probe"
OPERATION_TIMEOUT = 0.5  # seconds one operation may take inside a request
SLOW_ROUND_TRIP = 0.05  # seconds: slower than this on average, writes go behind the request
MIN_BUDGET = 0.02  # seconds: less left in the request, and the cache is not asked
_SMOOTHING = 0.3  # weight of the newest round trip in ``latency``

# Errors of the caller's own making (an incr on a missing key, a value that
# will not pickle): not a sign that the server is away.
_CALLER_ERRORS = (ValueError, TypeError, KeyError, AttributeError, pickle.PickleError)


class CacheUnavailable(Exception):
    """The shared cache is down (or being retried): carry on with local state."""


class SharedCache:
    """One cache alias as this process uses it: a gate in front of it, and a clock."""

    def __init__(
        self,
        alias: str = "default",
        *,
        cache: Any = None,
        clock: Clock | None = None,
        retry_interval: float = 1.0,
        clock_refresh: float = 30.0,
        recover_inline: bool = False,
        operation_timeout: float = OPERATION_TIMEOUT,
    ) -> None:
        self.alias = alias
        self.clock = clock or SYSTEM_CLOCK
        self.retry_interval = float(retry_interval)
        self.operation_timeout = float(operation_timeout)
        self.latency = 0.0  # seconds, a moving average of round trips
        self.recover_inline = recover_inline  # simulations: retry in the caller, not a thread
        self._override = cache
        self._down = False
        self._down_since = 0.0
        self._retry_at = 0.0
        self._retrying = threading.Lock()
        self.memo: dict[str, Any] = {}  # last good copies this process read or stored, by query
        # Told when the cache answers again (weakly: a store that is gone is not called).
        self.on_return: list[weakref.WeakMethod] = []
        self.timebase = Timebase(self.clock, self._reference, refresh=clock_refresh)
        self._helpers: ThreadPoolExecutor | None = None
        self._writer = WriteBehind(self)
        _live.add(self)

    def __repr__(self) -> str:
        return f"SharedCache({self.alias!r}, {'down' if self._down else 'up'})"

    @property
    def cache(self) -> Any:
        # Django gives each thread its own cache object: look it up each time.
        return self._override if self._override is not None else caches[self.alias]

    @property
    def healthy(self) -> bool:
        return not self._down

    @property
    def slow(self) -> bool:
        """Round trips cost more than the work they would save (a lock, a write awaited)."""
        return self.latency > SLOW_ROUND_TRIP

    def run(self, operation: Callable[[Any], T], *, late: Callable[[T], Any] | None = None) -> T:
        """``operation(cache)``, or ``CacheUnavailable`` at once while the cache is down.

        Inside a request the operation is bounded (see the module docstring);
        ``late`` is given the result of one that finished after it was given up
        on (a lock taken too late must be let go).
        """
        if self._down:
            self._retry_if_due()
            if self._down:
                raise CacheUnavailable(f"cache {self.alias!r} is unavailable")
        scope = current_scope() if self.clock is SYSTEM_CLOCK else None
        if scope is None:
            return self._call(operation)
        wait = min(self.operation_timeout, scope.cache_time_left())
        if wait < MIN_BUDGET:
            scope.cache_gave_up = "no time was left for it"
            raise CacheUnavailable(f"cache {self.alias!r}: no time left in this request")
        started = time.monotonic()
        try:
            if _thread_bound(self.cache):
                return _within_busy_timeout(self.cache, wait, lambda: self._call(operation))
            return self._in_helper(operation, wait, late, scope)
        except CacheUnavailable as exc:
            scope.cache_gave_up = scope.cache_gave_up or describe(exc.__cause__ or exc)
            raise
        finally:
            scope.charge(time.monotonic() - started)

    def write(self, key: str, operation: Callable[[Any], Any]) -> None:
        """A write nobody waits for: now, or behind the request while the cache is slow.

        Behind, only the newest write per ``key`` is made (in order of first
        asking); raises ``CacheUnavailable`` only when made now.
        """
        if self.slow and not self._down:
            self._writer.put(key, operation)
        else:
            self.run(operation)

    def _call(self, operation: Callable[[Any], T]) -> T:
        started = time.monotonic()
        try:
            result = operation(self.cache)
        except _CALLER_ERRORS:
            raise
        except Exception as exc:
            self._went_down(exc)
            raise CacheUnavailable(f"cache {self.alias!r} failed: {describe(exc)}") from exc
        self._timed(time.monotonic() - started)
        return result

    def _timed(self, seconds: float) -> None:
        if self.clock is SYSTEM_CLOCK:  # a simulation's round trips take no real time
            self.latency += _SMOOTHING * (seconds - self.latency)

    def _in_helper(
        self,
        operation: Callable[[Any], T],
        wait: float,
        late: Callable[[T], Any] | None,
        scope: RequestScope,
    ) -> T:
        """The operation in a helper thread, waited for ``wait`` seconds (no socket is cut)."""
        if self._helpers is None:
            self._helpers = ThreadPoolExecutor(4, thread_name_prefix=f"cache-{self.alias}")
        future = self._helpers.submit(self._call, operation)
        try:
            return future.result(timeout=wait)
        except FutureTimeout:
            # Given up on by this request only: if the cache is really gone, the
            # operation fails in its thread soon and marks it down for everyone.
            if late is not None:
                future.add_done_callback(_late_result(late))
            if wait < self.operation_timeout:  # the request's budget ran out, not the cache
                scope.cache_gave_up = f"given up on after {wait:.2f} s, the request's last"
            else:
                self._timed(wait)  # slow, as far as anyone can tell: write behind from now on
                scope.cache_gave_up = f"an operation took longer than {wait:g} s"
            raise CacheUnavailable(f"cache {self.alias!r}: {scope.cache_gave_up}") from None

    def now(self) -> float:
        """Wall time on the clock every process shares; re-measured when due (never blocks)."""
        timebase = self.timebase
        if timebase.due() and not self._down:
            with contextlib.suppress(CacheUnavailable):
                timebase.measure()
        return timebase.now()

    # Outage and return.

    def _went_down(self, exc: BaseException) -> None:
        now = self.clock.monotonic()
        self._retry_at = now + self.retry_interval
        if self._down:
            return
        self._down = True
        self._down_since = now
        log_event(
            logger,
            logging.WARNING,
            "resilience.cache_unavailable",
            cache_alias=self.alias,
            error=describe(exc),
            error_type=type(exc).__name__,
            consequence="breakers and last good copies carry on with this process's state",
        )

    def _retry_if_due(self) -> None:
        if self.clock.monotonic() < self._retry_at or not self._retrying.acquire(blocking=False):
            return
        self._retry_at = self.clock.monotonic() + self.retry_interval
        if self.recover_inline:
            self._retry()
        else:
            threading.Thread(
                target=self._retry, name=f"cache-retry:{self.alias}", daemon=True
            ).start()

    def _retry(self) -> None:
        try:
            self.cache.get(PROBE_KEY)
        except Exception:  # noqa: BLE001 - still away: try again after the interval
            self._retry_at = self.clock.monotonic() + self.retry_interval
            return
        finally:
            self._retrying.release()
        down_for = self.clock.monotonic() - self._down_since
        self.latency = 0.0  # back: judged afresh by its next round trips
        self._down = False
        log_event(
            logger,
            logging.INFO,
            "resilience.cache_recovered",
            cache_alias=self.alias,
            down_for=round(down_for, 3),
        )
        for ref in list(self.on_return):
            listener = ref()
            if listener is not None:
                listener()

    def _reference(self) -> float | None:
        return self.run(self._reference_time)

    def _reference_time(self, cache: Any) -> float | None:
        """The cache server's clock: ``TIME`` on Redis (a test double may offer its own).

        Only for the system clock: a test's fake clock and a real server's
        clock have nothing to agree on.
        """
        if hasattr(cache, "reference_time"):
            return float(cache.reference_time())
        client = _redis_client(cache) if self.clock is SYSTEM_CLOCK else None
        if client is None:
            return None
        seconds, microseconds = client.time()
        return seconds + microseconds / 1e6

    def after_fork(self) -> None:
        self._retrying = threading.Lock()
        self._helpers = None  # a fork copies no threads
        self._writer = WriteBehind(self)


class WriteBehind:
    """One writer thread per cache: writes nobody waits for, the newest per key, in order."""

    def __init__(self, shared: SharedCache) -> None:
        self.shared = shared
        self._pending: dict[str, Callable[[Any], Any]] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def put(self, key: str, operation: Callable[[Any], Any]) -> None:
        with self._wake:
            self._pending[key] = operation  # a newer value keeps the older one's place
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"cache-writer:{self.shared.alias}", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
                key = next(iter(self._pending))
                operation = self._pending.pop(key)
            # Lost when the cache is away: the caller still holds what it wrote (its memo),
            # and writes it again with its next result.
            with contextlib.suppress(CacheUnavailable):
                self.shared.run(operation)


def _late_result(late: Callable[[Any], Any]) -> Callable[[Future], None]:
    def done(future: Future) -> None:
        if not future.cancelled() and future.exception() is None:
            with contextlib.suppress(Exception):  # best effort: the value also expires
                late(future.result())

    return done


def _thread_bound(cache: Any) -> bool:
    """A database cache runs on this thread's connection (its transaction): never in a helper."""
    from django.core.cache.backends.db import DatabaseCache

    return isinstance(cache, DatabaseCache)


def _within_busy_timeout(cache: Any, seconds: float, call: Callable[[], T]) -> T:
    """``call()`` with SQLite waiting at most ``seconds`` for another process's write lock.

    SQLite's busy timeout (20 s in questdash's settings) is how long a write
    waits for a lock another process holds; inside a request it is cut to the
    operation's share, then put back. Other databases keep their own.
    """
    from django.db import connections, router

    connection = connections[router.db_for_write(cache.cache_model_class)]
    if connection.vendor != "sqlite":
        return call()
    connection.ensure_connection()
    raw = connection.connection
    before = raw.execute("PRAGMA busy_timeout").fetchone()[0]
    raw.execute(f"PRAGMA busy_timeout = {max(1, int(seconds * 1000))}")
    try:
        return call()
    finally:
        raw.execute(f"PRAGMA busy_timeout = {int(before)}")


def _redis_client(cache: Any) -> Any:
    from django.core.cache.backends.redis import RedisCache

    if not isinstance(cache, RedisCache):
        return None
    return cache._cache.get_client(write=False)


_live: weakref.WeakSet[SharedCache] = weakref.WeakSet()
_by_alias: dict[str, SharedCache] = {}
_registry_lock = threading.Lock()


def shared_cache(alias: str = "default") -> SharedCache:
    """This process's ``SharedCache`` for ``alias`` (one gate per alias per process)."""
    found = _by_alias.get(alias)
    if found is None:
        with _registry_lock:
            found = _by_alias.get(alias)
            if found is None:
                found = _by_alias[alias] = SharedCache(alias)
    return found


def reset_shared_caches() -> None:
    """Forget every gate (settings changed, or a test wants a clean slate)."""
    with _registry_lock:
        _by_alias.clear()


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for shared in list(_live):
        shared.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
