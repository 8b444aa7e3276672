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
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache import caches

from .clock import SYSTEM_CLOCK, Clock, Timebase
from .errors import describe
from .logs import log_event

logger = logging.getLogger("resilience.cache")

T = TypeVar("T")

PROBE_KEY = "resilience:cache-probe"

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
    ) -> None:
        self.alias = alias
        self.clock = clock or SYSTEM_CLOCK
        self.retry_interval = float(retry_interval)
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

    def run(self, operation: Callable[[Any], T]) -> T:
        """``operation(cache)``, or ``CacheUnavailable`` at once while the cache is down."""
        if self._down:
            self._retry_if_due()
            if self._down:
                raise CacheUnavailable(f"cache {self.alias!r} is unavailable")
        try:
            return operation(self.cache)
        except _CALLER_ERRORS:
            raise
        except Exception as exc:
            self._went_down(exc)
            raise CacheUnavailable(f"cache {self.alias!r} failed: {describe(exc)}") from exc

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
