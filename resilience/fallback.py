"""Last-known-good copies on Django's cache, and the envelope staff see.

A named query either answers fresh (status "ok"), or its failure is turned
into the last good copy marked with its age ("degraded"), or, with no copy,
into an error that says why ("error"). Copies are data, not a cache of
convenience: stored without expiry, and never replaced by a failure or by
an empty result.

Many requests arriving together cause one QuestDB query, not many: a copy
younger than `fresh_for` seconds is served as it is, and only the holder of
a short cache lock refreshes; the others wait briefly for its result.
"""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from django.core.cache import caches

from .breaker import get_breaker
from .errors import CircuitOpenError, describe, is_unreachable, scrub
from .guard import guarded
from .logs import log_event, log_failure
from .signals import fallback_served

logger = logging.getLogger("resilience.fallback")

Status = Literal["ok", "degraded", "error"]
Runner = Callable[[str, Callable[[], Any]], Any]

KEY_PREFIX = "resilience:lastgood:"
LOCK_PREFIX = "resilience:refreshing:"
DEFAULT_RETRY_AFTER = 5  # seconds, when no probe time is known
# The reasons that say the dependency is out of reach (not a bad query, not a busy lock).
DATABASE_UNAVAILABLE = "database_unavailable"
CIRCUIT_OPEN = "circuit_open"


@dataclass(frozen=True)
class Envelope:
    """The contract's JSON shape for one dashboard section."""

    status: Status
    data: list | None
    cached_at: datetime.datetime | None
    reason: str | None
    breaker: str
    retry_after: int | None = None

    @property
    def age_seconds(self) -> float | None:
        if self.cached_at is None:
            return None
        return (datetime.datetime.now(datetime.UTC) - self.cached_at).total_seconds()

    @property
    def unreachable(self) -> bool:
        return bool(self.reason) and self.reason.startswith((DATABASE_UNAVAILABLE, CIRCUIT_OPEN))

    @property
    def http_status(self) -> int:
        return 503 if self.status == "error" else 200

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "data": self.data,
            "cached_at": self.cached_at.isoformat() if self.cached_at else None,
            "reason": self.reason,
            "breaker": self.breaker,
        }


@dataclass(frozen=True)
class Copy:
    data: list
    cached_at: datetime.datetime


def read_copy(name: str, cache_alias: str = "default") -> Copy | None:
    """The last good copy of query ``name`` (cache errors propagate: callers decide)."""
    stored = caches[cache_alias].get(KEY_PREFIX + name)
    return Copy(**stored) if isinstance(stored, dict) else None


class _CacheHealth:
    """Logs a cache outage once, and its end once, however many calls fail meanwhile."""

    down = False

    @classmethod
    def failed(cls, exc: BaseException, operation: str) -> None:
        if not cls.down:
            cls.down = True
            log_failure(logger, "resilience.fallback.cache_unavailable", exc,
                        operation=operation, level=logging.WARNING)  # fmt: skip

    @classmethod
    def worked(cls) -> None:
        if cls.down:
            cls.down = False
            log_event(logger, logging.INFO, "resilience.fallback.cache_recovered")


class CachedFallback:
    """One named query with its last-known-good copy."""

    def __init__(
        self,
        name: str,
        loader: Callable[[], list],
        *,
        breaker_name: str,
        runner: Runner | None = None,
        cache_alias: str = "default",
        fresh_for: float = 2.0,
        lock_timeout: float = 15.0,
    ) -> None:
        self.name = name
        self.loader = loader
        self.breaker_name = breaker_name
        self.runner = runner or (lambda op, fn: guarded(op, fn, breaker_name=breaker_name))
        self.cache_alias = cache_alias
        self.fresh_for = fresh_for
        self.lock_timeout = lock_timeout

    @property
    def operation(self) -> str:
        return f"get_{self.name}"

    @property
    def cache(self):
        return caches[self.cache_alias]

    @property
    def key(self) -> str:
        return KEY_PREFIX + self.name

    def last_good(self) -> Copy | None:
        """The copy; None when there is none or the cache cannot be read (then QuestDB answers)."""
        try:
            copy = read_copy(self.name, self.cache_alias)
        except Exception as exc:  # noqa: BLE001 - a dead cache must not break the page
            _CacheHealth.failed(exc, f"read {self.name}")
            return None
        _CacheHealth.worked()
        return copy

    def serve_copy(self, reason: str) -> Envelope:
        """The copy without asking QuestDB: when another section just found it down."""
        return self._degraded(self.last_good(), reason)

    def get(self) -> Envelope:
        """What a request shows: a young copy, or a refresh by one caller for all."""
        copy = self.last_good()
        if copy is not None and self._age(copy) < self.fresh_for:
            return self._ok(copy)
        lock = self._lock()
        if lock is None:
            waited = self._wait_for_refresh(since=copy.cached_at if copy else None)
            if waited is not None:
                return self._ok(waited)
            return self._degraded(copy, "refresh_in_progress: another request is loading it")
        try:
            return self._refresh(copy)
        finally:
            self._unlock(lock)

    def refresh(self) -> Envelope:
        """Query now (the beat task): skips when another process already is."""
        lock = self._lock()
        if lock is None:  # someone else is querying: nothing failed, nothing to log
            return self._degraded(self.last_good(), "refresh_in_progress: skipped", log=False)
        try:
            return self._refresh(self.last_good())
        finally:
            self._unlock(lock)

    # --- internals -----------------------------------------------------------------

    def _refresh(self, copy: Copy | None) -> Envelope:
        try:
            data = self.runner(self.operation, self.loader)
        except CircuitOpenError as exc:
            return self._degraded(copy, f"{CIRCUIT_OPEN}: {exc}", retry_after=exc.retry_after)
        except Exception as exc:  # noqa: BLE001 - any failure degrades; the guard logged it
            kind = DATABASE_UNAVAILABLE if is_unreachable(exc) else "query_error"
            return self._degraded(copy, f"{kind}: {scrub(describe(exc))}")
        fresh = Copy(data=list(data), cached_at=datetime.datetime.now(datetime.UTC))
        if fresh.data or copy is None or not copy.data:
            self._store(fresh)
        return self._ok(fresh)

    def _store(self, copy: Copy) -> None:
        try:
            self.cache.set(self.key, {"data": copy.data, "cached_at": copy.cached_at}, None)
        except Exception as exc:  # noqa: BLE001 - the fresh answer is still served
            _CacheHealth.failed(exc, f"store {self.name}")

    def _ok(self, copy: Copy) -> Envelope:
        return Envelope("ok", copy.data, copy.cached_at, None, self._breaker_state())

    def _degraded(
        self, copy: Copy | None, reason: str, retry_after: int | None = None, *, log: bool = True
    ) -> Envelope:
        state = self._breaker_state()
        if log:
            fallback_served.send(
                self, query=self.name, status="error" if copy is None else "degraded",
                reason=reason, cached_at=copy.cached_at if copy else None,
            )  # fmt: skip
        if copy is None:
            if log:
                log_event(logger, logging.WARNING, "resilience.fallback.no_copy",
                          query=self.name, reason=reason)  # fmt: skip
            return Envelope("error", None, None, reason, state, retry_after or DEFAULT_RETRY_AFTER)
        if log:
            log_event(logger, logging.WARNING, "resilience.fallback.served",
                      query=self.name, cached_at=copy.cached_at.isoformat(),
                      age_seconds=round(self._age(copy), 1), reason=reason)  # fmt: skip
        return Envelope("degraded", copy.data, copy.cached_at, reason, state)

    def _breaker_state(self) -> str:
        return get_breaker(self.breaker_name).public_state

    @staticmethod
    def _age(copy: Copy) -> float:
        return (datetime.datetime.now(datetime.UTC) - copy.cached_at).total_seconds()

    def _lock(self) -> str | None:
        token = uuid.uuid4().hex
        try:
            acquired = self.cache.add(LOCK_PREFIX + self.name, token, self.lock_timeout)
        except Exception as exc:  # noqa: BLE001 - a dead cache must not stop the query
            _CacheHealth.failed(exc, f"lock {self.name}")
            return token
        return token if acquired else None

    def _unlock(self, token: str) -> None:
        key = LOCK_PREFIX + self.name
        try:
            if self.cache.get(key) == token:
                self.cache.delete(key)
        except Exception as exc:  # noqa: BLE001 - the lock expires by itself
            _CacheHealth.failed(exc, f"unlock {self.name}")

    def _wait_for_refresh(
        self, since: datetime.datetime | None, budget: float = 3.0
    ) -> Copy | None:
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            time.sleep(0.05)
            copy = self.last_good()
            if copy is not None and (since is None or copy.cached_at > since):
                return copy
            try:
                if self.cache.get(LOCK_PREFIX + self.name) is None:
                    return None
            except Exception:  # noqa: BLE001 - logged by last_good; stop waiting
                return None
        return None
