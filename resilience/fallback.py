"""Last-known-good copies on Django's cache, and the envelope staff see.

A named query either answers fresh (status "ok"), or its failure is turned
into the last good copy marked with its age ("degraded"), or, with no copy,
into an error that says why ("error"). Copies are data, not a cache of
convenience, and nothing loses them:

- stored without expiry, and never replaced by a failure;
- an empty answer is an answer: it renews the copy's freshness (health,
  burst collapsing) and is what a fresh request shows, but the copy keeps
  the last rows that were not empty, so an outage still has something to
  show; a degraded answer then says that the dependency's last answer,
  newer than those rows, had none;
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

Time spent on the shared cache is the request's too (``RequestScope``): a
page reads all its copies in one round trip (``read_ahead``), a slow cache
is written behind the request, and a request whose budget the cache used up
says so ("cache_slow"), never that the dependency is unavailable.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from django.core.serializers.json import DjangoJSONEncoder

from .clock import AGREEMENT, Clock
from .conf import breaker_config
from .deadline import current_deadline
from .errors import CircuitOpenError, Kind, classify, describe, is_unreachable, scrub
from .guard import guarded
from .logs import Summary
from .registry import get_breaker
from .scope import current_scope
from .sharedcache import CacheUnavailable, SharedCache, shared_cache
from .signals import fallback_served
from .singleflight import LOCK_PREFIX, Lease, SingleFlight  # noqa: F401 - LOCK_PREFIX re-exported
from .state import State

logger = logging.getLogger("resilience.fallback")

Status = Literal["ok", "degraded", "error"]
Runner = Callable[[str, Callable[[], Any]], Any]
Describer = Callable[[BaseException], str]

KEY_PREFIX = "resilience:lastgood:"
FAILED_PREFIX = "resilience:refreshfailed:"
DEFAULT_RETRY_AFTER = 5  # seconds, when no probe time is known
POLL = 0.05  # seconds between looks while another request refreshes
# While the breaker refuses, a process serves the copy it holds and looks in the
# cache for a newer one (another process's probe may have stored it) this often.
RECHECK = 1.0
# The reasons that say the dependency is out of reach (not a bad query, not a busy lock):
# "<kind>_unavailable" (database_unavailable for a database, service_unavailable...).
UNAVAILABLE = "_unavailable"
DATABASE_UNAVAILABLE = "database" + UNAVAILABLE
CIRCUIT_OPEN = "circuit_open"
# This request's time went to the shared cache: the dependency was not asked, or too late.
CACHE_SLOW = "cache_slow"
BUDGET_SPENT = "budget_spent"  # the request's budget was spent before the dependency was asked
OPENED_BY = "; opened by: "  # in a circuit_open reason: what opened the breaker

_summary = Summary(logger)


@dataclass(frozen=True)
class Envelope:
    """The contract's JSON shape for one dashboard section."""

    status: Status
    data: Any  # a list of rows for a dashboard section; any JSON value for other queries
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
        """The dependency is out of reach (down, or the breaker open): not a bad query."""
        code = (self.reason or "").partition(":")[0]
        return code == CIRCUIT_OPEN or code.endswith(UNAVAILABLE)

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


def is_empty(value: Any) -> bool:
    """No rows: None, or an empty list, tuple, dict or string."""
    return value is None or (isinstance(value, list | tuple | dict | str) and not value)


@dataclass(frozen=True)
class Copy:
    """The last rows worth showing, and when the dependency last answered at all.

    ``data`` is the last answer that was not empty, read at ``cached_at``.
    When a later answer was empty, ``answered_at`` says when and ``empty``
    holds it: fresh, that empty answer is the truth; in an outage, the rows
    are shown and the reason says they are older than the last answer.
    """

    data: Any
    cached_at: datetime.datetime  # when ``data`` was read, on the store's clock
    read_at: float | None = None  # this process's monotonic clock, when it read the data itself
    answered_at: datetime.datetime | None = None  # a later answer that was empty, if any
    empty: Any = None  # that empty answer ([], {}...)

    @property
    def last_answer_at(self) -> datetime.datetime:
        """When the dependency last answered: what freshness is measured from."""
        return self.answered_at or self.cached_at

    @functools.cached_property
    def data_json(self) -> str:
        """The data as JSON, encoded the first time a response needs it (copies are not changed)."""
        return _dumps(self.data)

    def stored(self) -> dict[str, Any]:
        return {"data": self.data, "cached_at": self.cached_at,
                "answered_at": self.answered_at, "empty": self.empty}  # fmt: skip

    def shifted(self, seconds: float) -> Copy:
        """Its times moved by ``seconds``: stamped before this process knew the store's clock."""
        delta = datetime.timedelta(seconds=seconds)
        answered_at = None if self.answered_at is None else self.answered_at + delta
        return replace(self, cached_at=self.cached_at + delta, answered_at=answered_at)


@dataclass
class Held:
    """The copy this process holds for a query, and when it last looked in the cache.

    ``local``: stamped on this host's clock, before this process ever measured
    the store's (the cache was away all along, so every time in it is this
    process's). A host minutes fast would otherwise pass its older rows for
    newer than the stored ones; they are moved onto the store's clock at the
    first look that can measure it.
    """

    copy: Copy
    checked_at: float  # monotonic
    local: bool = False


def _copy(stored: Any) -> Copy | None:
    if not isinstance(stored, dict) or "data" not in stored or "cached_at" not in stored:
        return None
    return Copy(
        stored["data"], stored["cached_at"],
        answered_at=stored.get("answered_at"), empty=stored.get("empty"),
    )  # fmt: skip


def _newest(mine: Copy | None, stored: Copy | None) -> Copy | None:
    """The newest answer of the two, carrying the newest rows that were not empty.

    A process that only ever saw an empty answer, or read rows while the cache
    could not take them, holds part of the truth; the store the other part.
    """
    copies = [copy for copy in (mine, stored) if copy is not None]
    if not copies:
        return None
    answer = max(copies, key=lambda copy: copy.last_answer_at)
    with_rows = [copy for copy in copies if not is_empty(copy.data)]
    rows = max(with_rows, key=lambda copy: copy.cached_at) if with_rows else answer
    if rows is answer or rows.last_answer_at == answer.last_answer_at:
        return rows
    empty = answer.empty if answer.answered_at is not None else answer.data
    return Copy(rows.data, rows.cached_at, answered_at=answer.last_answer_at, empty=empty)


def _failed_since(failure: Any, copy: Copy | None) -> bool:
    """Did a refresh fail after ``copy`` was read (a note of ``CachedFallback._failed``)?"""
    if not isinstance(failure, dict) or not {"reason", "retry_after", "at"} <= failure.keys():
        return False
    return copy is None or failure["at"] >= copy.last_answer_at.timestamp()


def read_copy(name: str, cache_alias: str = "default") -> Copy | None:
    """The stored last good copy of query ``name`` (``CacheUnavailable`` if it cannot be read)."""
    return _copy(shared_cache(cache_alias).run(lambda cache: cache.get(KEY_PREFIX + name)))


def read_ahead(queries: list[CachedFallback]) -> None:
    """Read the stored copies of several queries in one round trip, for this request.

    A page of several sections would otherwise make one round trip per
    section; each ``get()`` of this request finds its copy here instead.
    Outside a request, or with the cache away, it does nothing.
    """
    scope = current_scope()
    wanted = [q for q in queries if q.key not in (scope.copies if scope else {})]
    if scope is None or not wanted:
        return
    shared = wanted[0].shared
    try:
        found = shared.run(lambda cache: cache.get_many([q.key for q in wanted]))
    except CacheUnavailable:
        return
    for query in wanted:
        scope.copies[query.key] = found.get(query.key)


class CachedFallback:
    """One named query with its last-known-good copy."""

    def __init__(
        self,
        name: str,
        loader: Callable[[], Any],
        *,
        breaker_name: str,
        runner: Runner | None = None,
        cache_alias: str = "default",
        fresh_for: float = 2.0,
        lock_timeout: float | None = None,
        cache: Any = None,
        clock: Clock | None = None,
        shared: SharedCache | None = None,
        dependency: str = "database",
        dependency_label: str | None = None,
        describe_failure: Describer | None = None,
    ) -> None:
        """``loader`` returns any JSON-serialisable value, kept as it is (rows, a dict...).

        ``dependency`` is the kind of thing behind the breaker, as reasons name it
        ("database_unavailable", "service_unavailable"), and ``dependency_label``
        what people call it ("QuestDB"; default "the database");
        ``describe_failure`` words an exception for the people who read the
        reason (default: its scrubbed message).
        """
        self.name = name
        self.loader = loader
        self.breaker_name = breaker_name
        self.dependency = dependency
        self.dependency_label = dependency_label or f"the {dependency}"
        self.describe_failure = describe_failure or (lambda exc: scrub(describe(exc)))
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
        self.flight = SingleFlight(self.shared, name, self.lock_timeout, self.clock)

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
        held = self._held()
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
        lease = self.flight.acquire()
        if lease is None:
            return self._await_refresh(copy, looked)
        return self._refresh_holding(lease, copy, readable)

    def refresh(self) -> Envelope:
        """Query now (the beat task): skips when another process already is."""
        lease = self.flight.acquire()
        copy, readable = self._last_good()
        if lease is None:  # someone else is querying: nothing failed, nothing to log
            return self._degraded(copy, "refresh_in_progress: skipped", log=False)
        return self._refresh_holding(lease, copy, readable)

    def serve_copy(self, reason: str) -> Envelope:
        """The copy without asking the dependency: another query just found it down."""
        return self._degraded(self._last_good()[0], reason)

    def last_good(self) -> Copy | None:
        """The stored copy, else the one this process last had (None when there is neither)."""
        return self._last_good()[0]

    # copies

    def _last_good(self) -> tuple[Copy | None, bool]:
        """The copy, and whether the cache could be read (False: this process's own copy)."""
        held = self._held()
        mine = held.copy if held is not None else None
        scope = current_scope()
        try:
            if scope is not None and self.key in scope.copies:
                found = scope.copies.pop(self.key)  # read ahead for this request (once)
            else:
                found = self.shared.run(lambda cache: cache.get(self.key))
        except CacheUnavailable:
            return mine, False
        # The store may have lost it (flushed, restarted empty), hold what we hold, or an
        # older one (ours is still being written behind), or newer rows, or a newer answer.
        copy = _newest(mine, _copy(found))
        if copy is mine:
            if held is not None:
                held.checked_at = self.clock.monotonic()
        elif copy is not None:
            self._hold(copy)
        return copy, True

    def _held(self) -> Held | None:
        """The copy this process holds, moved onto the store's clock once it can be (see Held).

        Before anything else is done with it: an empty answer taken while the
        cache is away would otherwise carry the unmoved rows on, as measured.
        """
        held = self.shared.memo.get(self.name)
        if held is None or not held.local:
            return held
        self.shared.now()  # measures the store's clock, if the cache is there
        timebase = self.shared.timebase
        if not timebase.measured:
            return held
        moved = held.copy.shifted(timebase.offset)  # unmeasured, the offset was 0
        held = self.shared.memo[self.name] = Held(moved, held.checked_at)
        return held

    def _hold(self, copy: Copy, *, local: bool = False) -> None:
        self.shared.memo[self.name] = Held(copy, self.clock.monotonic(), local)

    def _checked_within(self, held: Held, seconds: float) -> bool:
        return 0.0 <= self.clock.monotonic() - held.checked_at < seconds

    def _store(self, copy: Copy) -> None:
        stored = copy.stored()
        with contextlib.suppress(CacheUnavailable):  # served fresh all the same; kept in memo
            self.shared.write(self.key, lambda cache: cache.set(self.key, stored, None))

    def _age(self, copy: Copy) -> float:
        """Seconds since the dependency last answered (the copy's rows may be older)."""
        if copy.read_at is not None:
            return self.clock.monotonic() - copy.read_at
        return self.shared.now() - copy.last_answer_at.timestamp()

    def _fresh(self, copy: Copy) -> bool:
        return -AGREEMENT <= self._age(copy) < self.fresh_for  # from the future: not fresh

    def _now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.shared.now(), datetime.UTC)

    # refreshing

    def _refresh(self, copy: Copy | None, readable: bool, *, locked: bool = True) -> Envelope:
        """Query through the runner; ``locked``: others wait for this result (tell them why not)."""
        try:
            answer = self.runner(self.operation, self.loader)
        except CircuitOpenError as exc:
            reason = f"{CIRCUIT_OPEN}: {self._worded(exc)}"
            return self._failed(copy, reason, exc.retry_after, share=locked)
        except Exception as exc:  # noqa: BLE001 - any failure degrades; the guard logged it
            return self._failed(copy, self._failure_reason(exc), share=locked)
        now, read_at = self._now(), self.clock.monotonic()
        if is_empty(answer) and copy is not None and not is_empty(copy.data):
            # An answer all the same: fresh, and said when the older rows are shown.
            fresh = Copy(copy.data, copy.cached_at, read_at, answered_at=now, empty=answer)
        else:
            fresh = Copy(answer, now, read_at)
        if readable or not is_empty(answer):  # never our older rows over a copy we could not see
            self._store(fresh)
        self._hold(fresh, local=not self.shared.timebase.measured)
        _summary.flush((self.name,), logging.INFO, "resilience.fallback.recovered", query=self.name)
        return self._ok(fresh)

    def _worded(self, exc: CircuitOpenError) -> str:
        """The refusal, and what opened the breaker, in the reader's words."""
        cause = exc.opened_by
        if cause is None:  # forced open, or opened before what opened it was kept
            return str(exc)
        return f"{exc}{OPENED_BY}{self.describe_failure(cause)}"

    def _failure_reason(self, exc: BaseException) -> str:
        """Why a refresh failed, for the envelope: the cache's fault is never the dependency's."""
        kind = classify(exc)
        scope = current_scope()
        blame = scope.cache_to_blame() if scope is not None else None
        if kind is Kind.NOT_ATTEMPTED:
            if blame is not None:
                return f"{CACHE_SLOW}: {blame}, so {self.dependency_label} was not asked"
            return f"{BUDGET_SPENT}: {self.describe_failure(exc)}"
        if kind is Kind.TIMEOUT and blame is not None:
            return f"{CACHE_SLOW}: {blame}, leaving too little for {self.dependency_label}"
        if is_unreachable(exc):
            return f"{self.dependency}{UNAVAILABLE}: {self.describe_failure(exc)}"
        return f"query_error: {self.describe_failure(exc)}"

    def _failed(
        self, copy: Copy | None, reason: str, retry_after: int | None = None, *, share: bool = True
    ) -> Envelope:
        """Serve the copy; ``share``: leave the reason where waiting requests will find it."""
        if share:
            failure = {"reason": reason, "retry_after": retry_after, "at": self.shared.now()}
            key = FAILED_PREFIX + self.name
            with contextlib.suppress(CacheUnavailable):
                self.shared.write(key, lambda cache: cache.set(key, failure, 10))
        return self._degraded(copy, reason, retry_after)

    def _refresh_holding(self, lease: Lease, copy: Copy | None, readable: bool) -> Envelope:
        """``_refresh`` by the holder of the lock, let go of however it ends."""
        try:
            return self._refresh(copy, readable, locked=not lease.solo)
        finally:
            self.flight.release(lease)

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
        since = copy.last_answer_at if copy is not None else None
        keys = [self.key, self.flight.key, FAILED_PREFIX + self.name]
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
            if newer is not None and (since is None or newer.last_answer_at > since):
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
            if token is None and (lease := self.flight.acquire()) is not None:
                return self._refresh_holding(lease, newer or copy, True)
        waited = self.clock.monotonic() - began
        return self._degraded(
            copy, f"refresh_in_progress: another request has been loading it for {waited:.1f} s"
        )

    # envelopes

    def _ok(self, copy: Copy) -> Envelope:
        state = self._breaker_state()
        if copy.answered_at is not None:  # the last answer was empty: that is the truth now
            return Envelope("ok", copy.empty, copy.answered_at, None, state, age=self._age(copy))
        return Envelope(
            "ok", copy.data, copy.cached_at, None, state, age=self._age(copy), copy=copy
        )

    def _degraded(
        self, copy: Copy | None, reason: str, retry_after: int | None = None, *, log: bool = True
    ) -> Envelope:
        state = self._breaker_state()
        status: Status = "error" if copy is None else "degraded"
        if copy is not None and copy.answered_at is not None:
            reason += (
                f"; {self.dependency_label}'s last answer, at {_clock_time(copy.answered_at)}, "
                f"had no rows: showing the rows from {_clock_time(copy.cached_at)}"
            )
        if log:
            fallback_served.emit(
                self, query=self.name, status=status, reason=reason,
                cached_at=copy.cached_at if copy else None,
            )  # fmt: skip
            self._log(copy, status, reason)
        if copy is None:
            return Envelope("error", None, None, reason, state, retry_after or DEFAULT_RETRY_AFTER)
        age = self.shared.now() - copy.cached_at.timestamp()  # of the rows shown
        return Envelope("degraded", copy.data, copy.cached_at, reason, state, age=age, copy=copy)

    def _log(self, copy: Copy | None, status: str, reason: str) -> None:
        """One line per section and minute, not one per request (logs.Summary); the
        requests in between are counted in the next line, and at DEBUG each has its own."""
        if copy is None:
            _summary.note((self.name,), logging.WARNING, "resilience.fallback.no_copy",
                          query=self.name, status=status, reason=reason)  # fmt: skip
            return

        def data() -> dict[str, Any]:
            age = self.shared.now() - copy.cached_at.timestamp()
            return {
                "query": self.name, "status": status, "kind": reason.split(":", 1)[0],
                "reason": reason, "cached_at": copy.cached_at.isoformat(),
                "age_seconds": round(age, 1) if math.isfinite(age) else None,
            }  # fmt: skip

        _summary.record((self.name,), logging.WARNING, "resilience.fallback.served", data)

    def _breaker_state(self) -> str:
        return get_breaker(self.breaker_name).public_state


def _clock_time(moment: datetime.datetime) -> str:
    """'2026-12-06 10:02:11 UTC': a time staff read at a glance, unambiguous."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
