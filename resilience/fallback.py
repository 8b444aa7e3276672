"""Last-known-good copies on Django's cache, and the envelope staff see.

A named query either answers fresh (status "ok"), or its failure is turned
into the last good copy marked with its age ("degraded"), or, with no copy,
into an error that says why ("error"). Copies are data, not a cache of
convenience, and nothing loses them:

- stored without expiry, and never replaced by a failure or by an empty
  result (not even when the cache could not be read to check: then nothing
  is stored);
- each process also keeps the last copy it read or stored, so a cache that
  hangs or went away still leaves it something to serve;
- ages are taken on the store's clock (``Timebase``), so a host whose clock
  runs minutes ahead cannot make an old copy look fresh: a copy "from the
  future" is never fresh, and "ok" always means data really read within
  ``fresh_for``.

Many requests arriving together cause one query, not many: a copy younger
than ``fresh_for`` is served as it is, and only the holder of a short cache
lock refreshes; the others wait for its result, at most as long as the
request's budget allows, and then say why they have none (the refresher's
own failure when it failed).

An outage costs less than a healthy request, not more: each process serves
a copy it holds while that copy is young, without a cache round trip; while
the breaker is not closed nobody waits for anybody (no lock is taken, the
breaker answers at once, and a probe is bounded by its own deadline), and a
process looks for a newer copy in the cache at most every ``RECHECK``
seconds. The JSON of a copy's data is encoded once, not once per request.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from django.core.serializers.json import DjangoJSONEncoder

from .clock import AGREEMENT, Clock
from .conf import breaker_config
from .deadline import current_deadline
from .errors import CircuitOpenError, describe, is_unreachable, scrub
from .guard import guarded
from .logs import Summary
from .registry import get_breaker
from .sharedcache import CacheUnavailable, SharedCache, shared_cache
from .signals import fallback_served
from .state import State

logger = logging.getLogger("resilience.fallback")

Status = Literal["ok", "degraded", "error"]
Runner = Callable[[str, Callable[[], Any]], Any]

KEY_PREFIX = "resilience:lastgood:"
LOCK_PREFIX = "resilience:refreshing:"
FAILED_PREFIX = "resilience:refreshfailed:"
DEFAULT_RETRY_AFTER = 5  # seconds, when no probe time is known
POLL = 0.05  # seconds between looks while another request refreshes
# While the breaker refuses, a process serves the copy it holds and looks in the
# cache for a newer one (another process's probe may have stored it) this often.
RECHECK = 1.0
# The reasons that say the dependency is out of reach (not a bad query, not a busy lock).
DATABASE_UNAVAILABLE = "database_unavailable"
CIRCUIT_OPEN = "circuit_open"

_summary = Summary(logger)


@dataclass(frozen=True)
class Envelope:
    """The contract's JSON shape for one dashboard section."""

    status: Status
    data: list | None
    cached_at: datetime.datetime | None
    reason: str | None
    breaker: str
    retry_after: int | None = None
    age: float | None = None  # seconds, on the store's clock, when the envelope was made
    copy: Copy | None = field(default=None, repr=False, compare=False)  # where data came from

    @property
    def age_seconds(self) -> float | None:
        return self.age

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

    def to_json(self) -> str:
        """``as_dict()`` as JSON (DjangoJSONEncoder), the data's part encoded once per copy."""
        data = self.copy.data_json if self.copy is not None else _dumps(self.data)
        cached_at = self.cached_at.isoformat() if self.cached_at else None
        dumps = json.dumps  # strings and None: the standard encoder says them alike, faster
        return (
            f'{{"status": {dumps(self.status)}, "data": {data}, "cached_at": {dumps(cached_at)}, '
            f'"reason": {dumps(self.reason)}, "breaker": {dumps(str(self.breaker))}}}'
        )


def _dumps(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder)


@dataclass(frozen=True)
class Copy:
    data: list
    cached_at: datetime.datetime  # when it was read, on the store's clock
    read_at: float | None = None  # this process's monotonic clock, when it read the data itself

    @functools.cached_property
    def data_json(self) -> str:
        """The data as JSON, encoded the first time a response needs it (copies are not changed)."""
        return _dumps(self.data)


@dataclass
class Held:
    """The copy this process holds for a query, and when it last looked in the cache."""

    copy: Copy
    checked_at: float  # monotonic


def _copy(stored: Any) -> Copy | None:
    if not isinstance(stored, dict) or "data" not in stored or "cached_at" not in stored:
        return None
    return Copy(stored["data"], stored["cached_at"])


def _failed_since(failure: Any, copy: Copy | None) -> bool:
    """Did a refresh fail after ``copy`` was read (a note of ``CachedFallback._failed``)?"""
    if not isinstance(failure, dict) or not {"reason", "retry_after", "at"} <= failure.keys():
        return False
    return copy is None or failure["at"] >= copy.cached_at.timestamp()


def read_copy(name: str, cache_alias: str = "default") -> Copy | None:
    """The stored last good copy of query ``name`` (``CacheUnavailable`` if it cannot be read)."""
    return _copy(shared_cache(cache_alias).run(lambda cache: cache.get(KEY_PREFIX + name)))


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
        lock_timeout: float | None = None,
        cache: Any = None,
        clock: Clock | None = None,
        shared: SharedCache | None = None,
    ) -> None:
        self.name = name
        self.loader = loader
        self.breaker_name = breaker_name
        self.runner = runner or (lambda op, fn: guarded(op, fn, breaker_name=breaker_name))
        self.cache_alias = cache_alias
        self.fresh_for = fresh_for
        if shared is None:
            shared = (
                SharedCache(cache_alias, cache=cache, clock=clock)
                if cache is not None
                else shared_cache(cache_alias)
            )
        self.shared = shared
        self.clock = clock or shared.clock
        deadline = float(breaker_config(breaker_name)["CALL_DEADLINE"])
        # Held no longer than a refresh can take, so a refresher that died
        # (SIGKILL) does not keep the others waiting long.
        self.lock_timeout = lock_timeout or max(5.0, 2 * deadline + 1)
        self.call_deadline = deadline

    @property
    def operation(self) -> str:
        return f"get_{self.name}"

    @property
    def key(self) -> str:
        return KEY_PREFIX + self.name

    # the three ways in

    def get(self) -> Envelope:
        """What a request shows: a young copy, or a refresh by one caller for all.

        While the breaker is not closed nobody takes the lock: the breaker
        itself lets at most its probes through, and everyone else gets the
        copy at once, without a cache write.
        """
        held = self.shared.memo.get(self.name)
        if held is not None and self._fresh(held.copy):
            return self._ok(held.copy)  # young enough: no round trip to the cache
        closed = get_breaker(self.breaker_name).state is State.CLOSED
        if not closed and held is not None and self._checked_within(held, RECHECK):
            return self._refresh(held.copy, True, locked=False)
        looked = self.clock.monotonic()
        copy, readable = self._last_good()
        if copy is not None and self._fresh(copy):
            return self._ok(copy)
        if not closed:
            return self._refresh(copy, readable, locked=False)
        lock = self._lock()
        if lock is None:
            return self._await_refresh(copy, looked)
        return self._refresh_holding(lock, copy, readable)

    def refresh(self) -> Envelope:
        """Query now (the beat task): skips when another process already is."""
        lock = self._lock()
        copy, readable = self._last_good()
        if lock is None:  # someone else is querying: nothing failed, nothing to log
            return self._degraded(copy, "refresh_in_progress: skipped", log=False)
        return self._refresh_holding(lock, copy, readable)

    def serve_copy(self, reason: str) -> Envelope:
        """The copy without asking the dependency: another query just found it down."""
        return self._degraded(self._last_good()[0], reason)

    def last_good(self) -> Copy | None:
        """The stored copy, else the one this process last had (None when there is neither)."""
        return self._last_good()[0]

    # copies

    def _last_good(self) -> tuple[Copy | None, bool]:
        """The copy, and whether the cache could be read (False: this process's own copy)."""
        held = self.shared.memo.get(self.name)
        mine = held.copy if held is not None else None
        try:
            stored = _copy(self.shared.run(lambda cache: cache.get(self.key)))
        except CacheUnavailable:
            return mine, False
        if stored is None:
            if held is not None:
                held.checked_at = self.clock.monotonic()
            return mine, True  # the store lost it (flushed, restarted empty): ours still counts
        if mine is not None and mine.cached_at == stored.cached_at:
            stored = mine  # the same copy: keep ours (its own read time, its encoded JSON)
        self._hold(stored)
        return stored, True

    def _hold(self, copy: Copy) -> None:
        self.shared.memo[self.name] = Held(copy, self.clock.monotonic())

    def _checked_within(self, held: Held, seconds: float) -> bool:
        return 0.0 <= self.clock.monotonic() - held.checked_at < seconds

    def _store(self, copy: Copy) -> None:
        stored = {"data": copy.data, "cached_at": copy.cached_at}
        with contextlib.suppress(CacheUnavailable):  # served fresh all the same; kept in memo
            self.shared.run(lambda cache: cache.set(self.key, stored, None))

    def _age(self, copy: Copy) -> float:
        if copy.read_at is not None:
            return self.clock.monotonic() - copy.read_at
        return self.shared.now() - copy.cached_at.timestamp()

    def _fresh(self, copy: Copy) -> bool:
        return -AGREEMENT <= self._age(copy) < self.fresh_for  # from the future: not fresh

    def _now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.shared.now(), datetime.UTC)

    # refreshing

    def _refresh(self, copy: Copy | None, readable: bool, *, locked: bool = True) -> Envelope:
        """Query through the runner; ``locked``: others wait for this result (tell them why not)."""
        try:
            data = self.runner(self.operation, self.loader)
        except CircuitOpenError as exc:
            return self._failed(copy, f"{CIRCUIT_OPEN}: {exc}", exc.retry_after, share=locked)
        except Exception as exc:  # noqa: BLE001 - any failure degrades; the guard logged it
            kind = DATABASE_UNAVAILABLE if is_unreachable(exc) else "query_error"
            return self._failed(copy, f"{kind}: {scrub(describe(exc))}", share=locked)
        fresh = Copy(list(data), self._now(), read_at=self.clock.monotonic())
        known = copy is not None and bool(copy.data)
        if fresh.data or (readable and not known):
            self._store(fresh)
        if fresh.data or not known:
            self._hold(fresh)
        _summary.flush((self.name,), logging.INFO, "resilience.fallback.recovered", query=self.name)
        return self._ok(fresh)

    def _failed(
        self, copy: Copy | None, reason: str, retry_after: int | None = None, *, share: bool = True
    ) -> Envelope:
        """Serve the copy; ``share``: leave the reason where waiting requests will find it."""
        if share:
            failure = {"reason": reason, "retry_after": retry_after, "at": self.shared.now()}
            with contextlib.suppress(CacheUnavailable):
                self.shared.run(lambda cache: cache.set(FAILED_PREFIX + self.name, failure, 10))
        return self._degraded(copy, reason, retry_after)

    def _refresh_holding(
        self, lock: tuple[str, float], copy: Copy | None, readable: bool
    ) -> Envelope:
        """``_refresh`` by the holder of ``lock``, let go of however it ends."""
        try:
            return self._refresh(copy, readable)
        finally:
            self._unlock(lock)

    def _lock(self) -> tuple[str, float] | None:
        """(token, when), or None when another process holds the lock.

        With the cache away, every process refreshes for itself: better one
        query each than none at all.
        """
        token = f"{id(self):x}-{self.clock.monotonic()}"
        try:
            added = self.shared.run(
                lambda cache: cache.add(LOCK_PREFIX + self.name, token, self.lock_timeout)
            )
        except CacheUnavailable:
            return "", self.clock.monotonic()
        return (token, self.clock.monotonic()) if added else None

    def _unlock(self, lock: tuple[str, float]) -> None:
        # Only while the lock cannot have expired: after that it may be
        # someone else's, and deleting it would let a third refresh too.
        token, taken = lock
        if not token or self.clock.monotonic() - taken > self.lock_timeout - 1.0:
            return
        with contextlib.suppress(CacheUnavailable):  # it expires by itself
            self.shared.run(lambda cache: cache.delete(LOCK_PREFIX + self.name))

    def _await_refresh(self, copy: Copy | None, looked: float) -> Envelope:
        """Another request is refreshing: wait for its copy, within this request's budget.

        ``copy`` is what this request found when it ``looked`` (monotonic): a
        newer one was read since, and is fresh for this request however small
        ``fresh_for`` is.
        """
        budget = self.call_deadline + 0.2
        deadline = current_deadline()
        if deadline is not None:
            budget = min(budget, deadline.remaining() - 0.1)
        began = self.clock.monotonic()
        until = began + max(0.0, budget)
        since = copy.cached_at if copy is not None else None
        keys = [self.key, LOCK_PREFIX + self.name, FAILED_PREFIX + self.name]
        breaker = get_breaker(self.breaker_name)
        holder: Any = None  # the token of the lock whose refresh this request waits for
        first = True
        while first or (left := until - self.clock.monotonic()) > 0:
            if not first:
                self.clock.sleep(min(POLL, left))
            first = False
            # Opened: the refresh we wait for will fail. Half-open: it is a probe, which
            # may take its whole deadline. Either way nobody waits on it: answer now.
            if (state := breaker.state) is not State.CLOSED:
                change = "opened" if state is State.OPEN else "went half-open"
                return self._degraded(copy, f"{CIRCUIT_OPEN}: {breaker.name} {change} meanwhile")
            try:
                found = self.shared.run(lambda cache: cache.get_many(keys))
            except CacheUnavailable:  # the cache went away: nobody can tell us; ask ourselves
                return self._refresh(copy, readable=False)
            newer = _copy(found.get(self.key))
            if newer is not None and (since is None or newer.cached_at > since):
                self._hold(newer)
                # Read since this request looked: fresh for this request (give or take
                # how far this process's and the refresher's clocks agree).
                since_looked = self.clock.monotonic() - looked
                if -AGREEMENT <= self._age(newer) <= max(self.fresh_for, since_looked) + AGREEMENT:
                    return self._ok(newer)
            token = found.get(keys[1])
            holder = token if holder is None else holder
            if token is not None and token == holder:
                continue  # still refreshing
            # It ended without a newer copy. If it failed, say why: a new lock is another
            # request's refresh, and waiting for that one too would add its time to ours.
            failure = found.get(keys[2]) or {}
            if _failed_since(failure, newer or copy):
                return self._degraded(newer or copy, failure["reason"], failure["retry_after"])
            # It succeeded and what it stored is what this request found already (it
            # looked between the store and the unlock). Refresh, or follow who does.
            holder = token
            if token is None and (lock := self._lock()) is not None:
                return self._refresh_holding(lock, newer or copy, True)
        waited = self.clock.monotonic() - began
        return self._degraded(
            copy, f"refresh_in_progress: another request has been loading it for {waited:.1f} s"
        )

    # envelopes

    def _ok(self, copy: Copy) -> Envelope:
        state = self._breaker_state()
        return Envelope(
            "ok", copy.data, copy.cached_at, None, state, age=self._age(copy), copy=copy
        )

    def _degraded(
        self, copy: Copy | None, reason: str, retry_after: int | None = None, *, log: bool = True
    ) -> Envelope:
        state = self._breaker_state()
        status: Status = "error" if copy is None else "degraded"
        if log:
            fallback_served.emit(
                self, query=self.name, status=status, reason=reason,
                cached_at=copy.cached_at if copy else None,
            )  # fmt: skip
            self._log(copy, status, reason)
        if copy is None:
            return Envelope("error", None, None, reason, state, retry_after or DEFAULT_RETRY_AFTER)
        return Envelope(
            "degraded", copy.data, copy.cached_at, reason, state, age=self._age(copy), copy=copy
        )

    def _log(self, copy: Copy | None, status: str, reason: str) -> None:
        """One line per section and minute, not one per request (logs.Summary); the
        requests in between are counted in the next line, and at DEBUG each has its own."""
        if copy is None:
            _summary.note((self.name,), logging.WARNING, "resilience.fallback.no_copy",
                          query=self.name, status=status, reason=reason)  # fmt: skip
            return

        def data() -> dict[str, Any]:
            age = self._age(copy)
            return {
                "query": self.name, "status": status, "kind": reason.split(":", 1)[0],
                "reason": reason, "cached_at": copy.cached_at.isoformat(),
                "age_seconds": round(age, 1) if math.isfinite(age) else None,
            }  # fmt: skip

        _summary.record((self.name,), logging.WARNING, "resilience.fallback.served", data)

    def _breaker_state(self) -> str:
        return get_breaker(self.breaker_name).public_state
