"""The fleet: every process that shares a breaker's store, its calls and the state it sees.

What Hystrix showed through Turbine (calls, error rate, latency per circuit,
summed over every host), kept in the breaker's own shared store.

**Recording costs a call one counter bump.** Each breaker already counts its
calls by outcome in lock-free tallies (``breaker/counts.py``), and a guarded
call's latency goes into a fixed-bin histogram where the call is already
timed (the guard's retry run). Nothing on the call path does I/O or reads
the time for the fleet. A background thread per process (``Reporter``)
reads the tallies every ``FLEET_REPORT_INTERVAL`` (1 s) and files the
difference into the current 5-second bucket of this minute's figures.

**Publishing costs one write per interval per process and store**, and
less when idle: the minute's figures of every breaker of the process are
one blob, written with ``set`` when something changed (counts, or the
decision the process sees), or every ``HEARTBEAT`` seconds so that an idle
process stays on the list. Once a minute it also checks its roster slot
and deletes its blob that just expired (the database cache keeps expired
rows until told); once per ``ROSTER_MINUTES`` it signs the roster (a few
``add``s).

**Keys**, under the store's prefix (``resilience``)::

    fleet:roster:<block>:<slot>        a process id; one per process per 10-minute block
    fleet:figures:<minute>:<process>   that process's blob for that minute (63 min TTL)

**The roster, without key listing.** Django's cache cannot list keys, so
readers find the processes through numbered roster slots. A process signs
a block by ``add``ing its id into the lowest free slot: ``add`` is atomic on
every cache the store accepts, so two processes never hold one slot, and a
slot is never freed before its block is over (its TTL outlives the block),
so each block's slots are filled from 1 without gaps. A reader reads slots
until ``GAP`` empty ones in a row. Races and deaths, and why they are safe:

- two processes signing at once: one ``add`` wins, the loser takes the next;
- a sign whose answer was lost (a timeout) is signed again: the reader sees
  one id twice and counts it once;
- a process that dies keeps its slot until its block ends: its figures,
  which are real calls, still count for the hour; it drops off the list
  of live processes ``FLEET_PROCESS_TIMEOUT`` after its last report;
- a flushed cache loses the roster: each process checks its slot once a
  minute and signs again, so it reappears within a minute;
- a process whose clock is off writes on the store's clock (``store.now()``).

Readers sum the blobs of the last hour: rolling 10 s, 1 min and 10 min
windows, p50/p99 latency over the last minute, and per-minute volume and
errors for the timeline. A store that is not shared (``LocalStore``) keeps
the same figures in this process only, and the page says so.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .breaker.counts import LATENCY_BOUNDS
from .logs import log_failure
from .process import Identity, identity
from .sharedcache import CacheUnavailable
from .state import Record, State

if TYPE_CHECKING:
    from .breaker import CircuitBreaker
    from .sharedcache import SharedCache
    from .stores import BreakerStore

logger = logging.getLogger("resilience.fleet")

WIRE_VERSION = 1
BUCKET = 5  # seconds of calls per bucket
MINUTE = 60
KEEP_MINUTES = 63  # the timeline's hour, the minute in progress and a margin
ROSTER_MINUTES = 10  # a process signs the roster once per block of this many minutes
GAP = 4  # empty roster slots in a row that end a reader's scan
MAX_SLOTS = 1024  # processes per block at most (a bound on a broken cache's scan)
HEARTBEAT = 5.0  # seconds: an idle process writes at least this often (a third of the timeout)
HOUR = 3600
WINDOWS = ((10, "10 s"), (60, "1 min"), (600, "10 min"))
LATENCY_WINDOW = 60
OUTCOMES = ("success", "failure", "rejected", "ignored")


def _shared_cache(store: BreakerStore) -> SharedCache | None:
    """The shared cache behind a store, if it has one (``CacheStore``)."""
    return getattr(store, "shared_cache", None) if store.shared else None


def _prefix(store: BreakerStore) -> str:
    return f"{getattr(store, 'key_prefix', 'resilience')}:fleet"


def _empty_bucket() -> list[Any]:
    return [0] * len(OUTCOMES) + [{}]  # the counts in OUTCOMES order, then {latency bin: count}


# --- one store, as this process reports to it and reads the fleet from it --------------


class Channel:
    """This process's figures for the breakers of one store, and the fleet's as read back."""

    def __init__(self, store: BreakerStore, *, me: Identity | None = None) -> None:
        self.store = store
        self.me = me  # this process (tests stand several processes in one)
        self.cache = _shared_cache(store)
        self.prefix = _prefix(store)
        self.breakers: weakref.WeakValueDictionary[str, CircuitBreaker] = (
            weakref.WeakValueDictionary()
        )
        self._last: dict[str, tuple[list[int], list[int]]] = {}  # tallies at the last sample
        self._minutes: dict[int, dict[str, Any]] = {}  # this process's blobs, by minute
        self._signed: dict[int, int] = {}  # roster block -> our slot
        self._checked_minute = -1  # the minute our roster slot was last checked
        self._written = -math.inf  # monotonic time of the last write
        self._lock = threading.Lock()
        self.heartbeat = HEARTBEAT
        self._told: list[tuple[str, str, bool]] = []  # the views last published

    @property
    def shared(self) -> bool:
        return self.cache is not None

    def add(self, breaker: CircuitBreaker) -> None:
        """Report ``breaker`` from now on: what it counted before is not this minute's news."""
        with self._lock:
            if self.breakers.get(breaker.name) is not breaker:
                self.breakers[breaker.name] = breaker
                self._last[breaker.name] = self._tallies(breaker)

    @staticmethod
    def _tallies(breaker: CircuitBreaker) -> tuple[list[int], list[int]]:
        counts = breaker.counts
        outcomes = [
            counts.successes.value,
            counts.failures.value,
            counts.rejections.value,
            counts.ignored.value,
        ]
        return outcomes, counts.latency.values()

    def after_fork(self) -> None:
        """A forked child is a new process: its own blobs and slots, the tallies' baseline kept."""
        self._lock = threading.Lock()
        self._minutes.clear()
        self._signed.clear()
        self._checked_minute = -1
        self._written = -math.inf
        self._told = []

    def _key(self, *parts: object) -> str:
        return ":".join((self.prefix, *map(str, parts)))

    def _io(self, operation: Any) -> Any:
        assert self.cache is not None
        return self.cache.run(operation)

    # reporting

    def publish(self, *, force: bool = False) -> bool:
        """File what the tallies counted since the last time; write when due. Whether written."""
        with self._lock:
            now = self.store.now()
            minute = int(now // MINUTE)
            blob = self._minutes.get(minute)
            if blob is None:
                blob = self._minutes[minute] = self._new_blob(minute)
            changed = False
            views = []
            for name, breaker in list(self.breakers.items()):
                changed |= self._sample(blob, breaker, now, minute)
                view = self._view(breaker, now)
                blob["breakers"].setdefault(name, {"b": {}}).update(view)
                views.append((name, view["uid"], view["healthy"]))
            blob["at"] = now
            if views != self._told:  # a new decision seen, or the store lost: say so now
                changed, self._told = True, views
            for old in [m for m in self._minutes if m <= minute - KEEP_MINUTES]:
                del self._minutes[old]
            if self.cache is None:
                return False
            monotonic = self.store.clock.monotonic()
            if not (changed or force or monotonic - self._written >= self.heartbeat):
                return False
            self._write(minute, blob)
            self._written = monotonic
            return True

    @property
    def identity(self) -> Identity:
        return self.me or identity()

    def _new_blob(self, minute: int) -> dict[str, Any]:
        me = self.identity
        return {
            "v": WIRE_VERSION,
            "minute": minute,
            "proc": {"id": me.id, "host": me.host, "pid": me.pid, "role": me.role},
            "at": None,
            "breakers": {},
        }

    def _sample(
        self, blob: dict[str, Any], breaker: CircuitBreaker, now: float, minute: int
    ) -> bool:
        outcomes, latency = self._tallies(breaker)
        before = self._last.get(breaker.name)
        self._last[breaker.name] = (outcomes, latency)
        if before is None:
            before = ([0] * len(outcomes), [0] * len(latency))
        moved = [now_ - then for now_, then in zip(outcomes, before[0], strict=True)]
        timed = [now_ - then for now_, then in zip(latency, before[1], strict=True)]
        if not any(moved) and not any(timed):
            return False
        figures = blob["breakers"].setdefault(breaker.name, {"b": {}})
        index = min(MINUTE // BUCKET - 1, int((now - minute * MINUTE) // BUCKET))
        bucket = figures["b"].setdefault(index, _empty_bucket())
        for position, count in enumerate(moved):
            bucket[position] += count
        for position, count in enumerate(timed):
            if count:
                bucket[4][position] = bucket[4].get(position, 0) + count
        return True

    def _view(self, breaker: CircuitBreaker, now: float) -> dict[str, Any]:
        """The state this process sees, and when it last read the store (no I/O)."""
        rec = breaker.record
        cell = self.store.cell(breaker.name)
        synced = None
        if math.isfinite(cell.last_sync):
            synced = now - (self.store.clock.monotonic() - cell.last_sync)
        error, error_type, failed_at = breaker.last_failure
        return {
            "state": rec.state_at(now).value,
            "forced": rec.forced,
            "epoch": rec.epoch,
            "uid": rec.uid,
            "synced": synced,
            "healthy": self.store.healthy,
            "error": error,
            "error_type": error_type,
            "failed_at": failed_at,
        }

    def _write(self, minute: int, blob: dict[str, Any]) -> None:
        me = self.identity.id
        block = minute // ROSTER_MINUTES
        ttl = KEEP_MINUTES * MINUTE
        with contextlib.suppress(CacheUnavailable):  # the gate said so once; try next time
            new_minute = self._checked_minute != minute
            if block not in self._signed:
                self._sign(block, me)
            elif new_minute:
                self._check_signature(block, me)
            self._checked_minute = minute
            key = self._key("figures", minute, me)
            self._io(lambda cache: cache.set(key, blob, ttl))
            if new_minute:  # Redis expires it; the database cache only deletes what it is told
                expired = self._key("figures", minute - KEEP_MINUTES, me)
                self._io(lambda cache: cache.delete(expired))
            for old in [b for b in self._signed if b < block - 1]:
                del self._signed[old]

    def _sign(self, block: int, me: str) -> None:
        """Take the lowest free roster slot of ``block`` (``add`` is atomic: one owner each)."""
        ttl = (ROSTER_MINUTES + KEEP_MINUTES) * MINUTE
        for slot in range(1, MAX_SLOTS + 1):
            key = self._key("roster", block, slot)
            if self._io(lambda cache, key=key: cache.add(key, me, ttl)):
                self._signed[block] = slot
                return

    def _check_signature(self, block: int, me: str) -> None:
        """Once a minute: is our slot still ours? (A flushed cache lost it: sign again.)"""
        key = self._key("roster", block, self._signed[block])
        if self._io(lambda cache: cache.get(key)) != me:
            del self._signed[block]
            self._sign(block, me)

    # reading

    def blobs(self, now: float) -> list[dict[str, Any]]:
        """Every process's blobs of the last ``KEEP_MINUTES`` (only ours when not shared)."""
        minute = int(now // MINUTE)
        if self.cache is None:
            self.publish()  # no thread may be reporting here: count up to now
            return self.own_blobs()
        first = minute - KEEP_MINUTES + 1
        processes = self._roster(range(first // ROSTER_MINUTES, minute // ROSTER_MINUTES + 1))
        keys = [
            self._key("figures", m, process)
            for m in range(first, minute + 1)
            for process in processes.get(m // ROSTER_MINUTES, ())
        ]
        found = self._io(lambda cache: cache.get_many(keys)) if keys else {}
        return [blob for blob in found.values() if _valid(blob)]

    def own_blobs(self) -> list[dict[str, Any]]:
        """This process's blobs (a copy: the reporter goes on filling them)."""
        with self._lock:
            return copy.deepcopy(list(self._minutes.values()))

    def _roster(self, blocks: Iterable[int]) -> dict[int, set[str]]:
        """block -> the ids signed in it: slots read until ``GAP`` empty ones in a row."""
        signed: dict[int, set[str]] = {}
        open_blocks = {block: 1 for block in blocks}  # block -> next slot to read
        while open_blocks:
            keys = {
                self._key("roster", block, slot): block
                for block, start in open_blocks.items()
                for slot in range(start, min(start + 2 * GAP, MAX_SLOTS + 1))
            }
            found = self._io(lambda cache, keys=keys: cache.get_many(list(keys)))
            for block, start in list(open_blocks.items()):
                empty_run, last = 0, start
                for slot in range(start, min(start + 2 * GAP, MAX_SLOTS + 1)):
                    value = found.get(self._key("roster", block, slot))
                    last = slot
                    if isinstance(value, str):
                        signed.setdefault(block, set()).add(value)
                        empty_run = 0
                    else:
                        empty_run += 1
                if empty_run >= GAP or last >= MAX_SLOTS:
                    del open_blocks[block]
                else:
                    open_blocks[block] = last + 1
        return signed


def _valid(blob: Any) -> bool:
    return (
        isinstance(blob, dict)
        and blob.get("v") == WIRE_VERSION
        and isinstance(blob.get("minute"), int)
        and isinstance(blob.get("proc"), dict)
        and isinstance(blob.get("breakers"), dict)
    )


# --- the reporter: one thread per process ------------------------------------------------


class Reporter:
    """Publishes this process's figures for every watched breaker, every ``interval`` seconds."""

    def __init__(self) -> None:
        self._channels: dict[int, Channel] = {}  # by id(store)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.interval = 0.0
        self._last_warning = -math.inf

    def channel(self, store: BreakerStore) -> Channel:
        found = self._channels.get(id(store))
        if found is None or found.store is not store:
            with self._lock:
                found = self._channels.get(id(store))
                if found is None or found.store is not store:
                    found = self._channels[id(store)] = Channel(store)
        return found

    def watch(
        self, breaker: CircuitBreaker, *, interval: float, heartbeat: float = HEARTBEAT
    ) -> None:
        """Report ``breaker``'s figures from now on; a positive interval starts the thread."""
        channel = self.channel(breaker.store)
        channel.add(breaker)
        channel.heartbeat = heartbeat
        if interval > 0:
            self.interval = float(interval)
            self._start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _start(self) -> None:
        with self._lock:
            if self.running:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="resilience-fleet", daemon=True
            )
            self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        from django.db import close_old_connections

        while not stop.wait(self.interval):
            with contextlib.suppress(Exception):
                close_old_connections()  # the database cache's connection, if it broke
            self.tick()

    def tick(self) -> None:
        """One report: every watched breaker's view refreshed (when due), then published."""
        for channel in list(self._channels.values()):
            try:
                for breaker in list(channel.breakers.values()):
                    breaker.state  # noqa: B018 - refreshes from the store when due, announces
                channel.publish()
            except Exception as exc:  # noqa: BLE001 - the reporter must outlive any one failure
                self._warn(channel, exc)

    def _warn(self, channel: Channel, exc: Exception) -> None:
        now = channel.store.clock.monotonic()
        if now - self._last_warning < MINUTE:
            return
        self._last_warning = now
        log_failure(logger, "resilience.fleet.report_failed", exc,
                    operation="report fleet figures", level=logging.WARNING)  # fmt: skip

    def forget(self) -> None:
        """Stop reporting and forget every channel (settings changed; a test's clean slate)."""
        self._stop.set()
        with self._lock:
            self._channels.clear()
            self._thread = None

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        was_running = self._thread is not None
        self._thread = None
        for channel in self._channels.values():
            channel.after_fork()
        if was_running and self.interval > 0:
            self._start()


_reporter = Reporter()


def reporter() -> Reporter:
    return _reporter


def watch(breaker: CircuitBreaker, *, interval: float | None = None) -> None:
    """Report ``breaker`` to the fleet (``interval`` defaults to ``FLEET_REPORT_INTERVAL``).

    An idle process still writes every third of ``FLEET_PROCESS_TIMEOUT``, so
    that it stays on the page's list of live processes.
    """
    from .conf import get_config

    config = get_config()
    if interval is None:
        interval = float(config["FLEET_REPORT_INTERVAL"])
    heartbeat = max(interval, float(config["FLEET_PROCESS_TIMEOUT"]) / 3)
    _reporter.watch(breaker, interval=interval, heartbeat=heartbeat)


os.register_at_fork(after_in_child=lambda: _reporter.after_fork())


# --- what the page shows ------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Calls of the whole fleet over the last ``seconds``, by outcome."""

    label: str
    seconds: int
    success: int
    failure: int
    rejected: int
    ignored: int

    @property
    def calls(self) -> int:
        return self.success + self.failure + self.rejected + self.ignored

    @property
    def error_rate(self) -> float | None:
        """Failures over the calls that reached the dependency, in percent."""
        ran = self.success + self.failure
        return None if not ran else round(100.0 * self.failure / ran, 1)


@dataclass(frozen=True)
class ProcessView:
    """One process that shares the breaker, as it last reported."""

    id: str
    host: str
    pid: int
    role: str
    state: str
    forced: bool
    epoch: int
    uid: str
    synced_at: float | None
    reported_at: float
    healthy: bool
    me: bool = False  # the process that answers this page

    @property
    def actor(self) -> str:
        return f"{self.role} pid {self.pid}@{self.host}"


@dataclass(frozen=True)
class Minute:
    """One minute of the fleet's calls, for the timeline."""

    start: float
    calls: int
    failures: int
    ran: int  # successes + failures

    @property
    def error_rate(self) -> float | None:
        return None if not self.ran else 100.0 * self.failures / self.ran


@dataclass(frozen=True)
class LastError:
    error: str
    error_type: str | None
    at: float | None
    actor: str


@dataclass(frozen=True)
class FleetView:
    """One breaker across every process that shares its store (or this process alone)."""

    name: str
    shared: bool  # figures from every process sharing the store; else this process only
    available: bool  # the shared store answered (else: this process's own figures)
    taken_at: float
    windows: tuple[Window, ...]
    p50: float | None  # seconds, over the last minute, calls that were timed
    p99: float | None
    timed_calls: int
    processes: tuple[ProcessView, ...]
    minutes: tuple[Minute, ...]  # the last hour, oldest first
    last_error: LastError | None
    timeout: float = 15.0

    @property
    def scope(self) -> str:
        if not self.shared:
            return "this process only: the breaker's store is not shared"
        if not self.available:
            return "this process only: the shared store does not answer"
        count = len(self.processes)
        return f"{count} process{'es' if count != 1 else ''} sharing the store"

    def window(self, seconds: int) -> Window:
        return next(w for w in self.windows if w.seconds == seconds)


def fleet_view(
    breaker: CircuitBreaker, *, timeout: float | None = None, channel: Channel | None = None
) -> FleetView:
    """The fleet's figures for ``breaker``: read from the shared store (a few round trips)."""
    if timeout is None:
        from .conf import get_config

        timeout = float(get_config()["FLEET_PROCESS_TIMEOUT"])
    channel = channel or _reporter.channel(breaker.store)
    channel.add(breaker)
    if channel.shared and _reporter.running:
        channel.publish(force=True)  # the answering process's own row, as of now
    now = breaker.store.now()
    available = True
    try:
        blobs = channel.blobs(now)
    except CacheUnavailable:
        available = False
        channel.publish()
        blobs = channel.own_blobs()
    return aggregate(
        breaker.name,
        blobs,
        now,
        shared=channel.shared,
        available=available,
        timeout=timeout,
        me=channel.identity.id,
    )


def aggregate(
    name: str,
    blobs: list[dict[str, Any]],
    now: float,
    *,
    shared: bool = True,
    available: bool = True,
    timeout: float = 15.0,
    me: str | None = None,
) -> FleetView:
    """Sum the blobs of every process for breaker ``name`` (pure: the tests' entry point)."""
    me = me or identity().id
    sums = {seconds: [0.0] * 4 for seconds, _ in WINDOWS}
    bins = [0.0] * (len(LATENCY_BOUNDS) + 1)
    hour_start = (int(now // MINUTE) - 59) * MINUTE
    per_minute: dict[int, list[int]] = {}
    newest: dict[str, tuple[float, dict[str, Any], dict[str, Any]]] = {}
    last_error: LastError | None = None
    for blob in blobs:
        figures = blob["breakers"].get(name)
        if not isinstance(figures, dict):
            continue
        minute = blob["minute"]
        proc = blob["proc"]
        reported = blob.get("at") or 0.0
        if proc.get("id") not in newest or reported > newest[proc["id"]][0]:
            newest[proc["id"]] = (reported, proc, figures)
        error = figures.get("error")
        if error and (last_error is None or (figures.get("failed_at") or 0) > (last_error.at or 0)):
            actor = f"{proc.get('role')} pid {proc.get('pid')}@{proc.get('host')}"
            last_error = LastError(
                error, figures.get("error_type"), figures.get("failed_at"), actor
            )
        for index, bucket in (figures.get("b") or {}).items():
            start = minute * MINUTE + int(index) * BUCKET
            counts = bucket[:4]
            for seconds, total in sums.items():
                weight = _overlap(start, now, seconds)
                if weight:
                    for position in range(4):
                        total[position] += weight * counts[position]
            weight = _overlap(start, now, LATENCY_WINDOW)
            if weight:
                for position, count in bucket[4].items():
                    bins[int(position)] += weight * count
            if start >= hour_start:
                row = per_minute.setdefault(minute, [0, 0, 0])
                row[0] += sum(counts)
                row[1] += counts[1]
                row[2] += counts[0] + counts[1]
    windows = tuple(
        Window(label, seconds, *(round(value) for value in sums[seconds]))
        for seconds, label in WINDOWS
    )
    processes = tuple(
        sorted(
            (
                _process(proc, figures, reported, me)
                for reported, proc, figures in newest.values()
                if now - reported <= timeout
            ),
            key=lambda p: (p.role, p.host, p.pid),
        )
    )
    first = int(now // MINUTE) - 59
    minutes = tuple(
        Minute(m * MINUTE, *per_minute.get(m, (0, 0, 0))) for m in range(first, first + 60)
    )
    return FleetView(
        name=name,
        shared=shared,
        available=available,
        taken_at=now,
        windows=windows,
        p50=quantile(bins, 0.50),
        p99=quantile(bins, 0.99),
        timed_calls=round(sum(bins)),
        processes=processes,
        minutes=minutes,
        last_error=last_error,
        timeout=timeout,
    )


def _overlap(start: float, now: float, seconds: int) -> float:
    """How much of a bucket starting at ``start`` falls in the last ``seconds`` (0 to 1).

    A bucket wholly inside counts whole, the one in progress too; the one
    that straddles the window's start counts in proportion.
    """
    since = now - seconds
    end = start + BUCKET
    if end <= since:
        return 0.0
    if start >= since:
        return 1.0
    return (end - since) / BUCKET


def quantile(bins: list[float], q: float) -> float | None:
    """The ``q`` quantile of a binned histogram, linear within the bin (seconds)."""
    total = sum(bins)
    if total <= 0:
        return None
    target = q * total
    seen = 0.0
    for index, count in enumerate(bins):
        if count and seen + count >= target:
            low = LATENCY_BOUNDS[index - 1] if index else 0.0
            if index >= len(LATENCY_BOUNDS):
                return low  # slower than the last bound: say at least that
            high = LATENCY_BOUNDS[index]
            return low + (high - low) * (target - seen) / count
        seen += count
    return LATENCY_BOUNDS[-1]


def _process(
    proc: dict[str, Any], figures: dict[str, Any], reported: float, me: str
) -> ProcessView:
    return ProcessView(
        id=str(proc.get("id")),
        host=str(proc.get("host")),
        pid=int(proc.get("pid") or 0),
        role=str(proc.get("role")),
        state=str(figures.get("state") or State.CLOSED.value),
        forced=bool(figures.get("forced")),
        epoch=int(figures.get("epoch") or 0),
        uid=str(figures.get("uid") or ""),
        synced_at=figures.get("synced"),
        reported_at=reported,
        healthy=bool(figures.get("healthy", True)),
        me=proc.get("id") == me,
    )


# --- the current outage, from the shared history ------------------------------------------


@dataclass(frozen=True)
class ProbeOutcome:
    at: float
    actor: str
    succeeded: bool
    error: str | None


@dataclass(frozen=True)
class Outage:
    """The breaker's current open streak: since its first open, through every failed probe."""

    opened: Record  # the decision that opened it after it was last closed
    since: float
    probes: tuple[ProbeOutcome, ...]

    def lasted(self, now: float) -> float:
        return max(0.0, now - self.since)

    @property
    def last_probe_at(self) -> float | None:
        return self.probes[-1].at if self.probes else None


def current_outage(records: list[Record]) -> Outage | None:
    """The open streak at the head of ``records`` (oldest first), or None when closed."""
    if not records or records[-1].state is not State.OPEN:
        return None
    streak: list[Record] = []
    for rec in reversed(records):
        if rec.state is not State.OPEN:
            break
        streak.append(rec)
    streak.reverse()
    first = streak[0]
    probes = tuple(
        ProbeOutcome(rec.at or 0.0, rec.actor, False, rec.error)
        for rec in streak[1:]
        if rec.reason.startswith("probe")
    )
    return Outage(first, first.opened_at or first.at or 0.0, probes)


def recent_probes(records: list[Record], limit: int = 10) -> tuple[ProbeOutcome, ...]:
    """The probes that decided something, newest last: failed (re-opened) or succeeded."""
    found = [
        ProbeOutcome(rec.at or 0.0, rec.actor, rec.state is State.CLOSED, rec.error)
        for rec in records
        if rec.reason.startswith("probe")
    ]
    return tuple(found[-limit:])


def longest_open(records: list[Record], now: float, span: float = HOUR) -> float:
    """The longest open streak (seconds) that overlaps the last ``span`` seconds."""
    longest = 0.0
    began: float | None = None
    for rec in records:
        at = rec.at or 0.0
        if rec.state is State.OPEN and began is None:
            began = rec.opened_at or at
        elif rec.state is not State.OPEN and began is not None:
            if at >= now - span:
                longest = max(longest, at - began)
            began = None
    if began is not None:
        longest = max(longest, now - began)
    return longest


@dataclass(frozen=True)
class Band:
    """A stretch of the timeline in one state."""

    state: str  # closed, open, half_open or unknown
    start: float
    end: float


def state_bands(records: list[Record], now: float, span: float = HOUR) -> list[Band]:
    """The breaker's states over the last ``span`` seconds, from its decisions (oldest first).

    An open decision is open until its ``open_until`` and half-open after it
    (probing) until the next decision. Before the oldest decision known: closed
    if that was the breaker's first, else unknown (the history was cut).
    """
    start = now - span
    bands: list[Band] = []
    if not records or (records[0].at or 0.0) > start:
        first_known = records[0].at if records else now
        before = "closed" if not records or records[0].epoch <= 1 else "unknown"
        bands.append(Band(before, start, min(now, first_known or now)))
    for index, rec in enumerate(records):
        after = records[index + 1] if index + 1 < len(records) else None
        begin = rec.at or 0.0
        end = (after.at or now) if after is not None else now
        if end <= start:
            continue
        begin = max(begin, start)
        if rec.state is State.CLOSED:
            bands.append(Band("closed", begin, end))
            continue
        until = rec.open_until if not rec.forced and rec.open_until is not None else end
        if until > begin:
            bands.append(Band("open", begin, min(until, end)))
        if until < end:
            bands.append(Band("half_open", max(until, begin), end))
    return [band for band in bands if band.end > band.start]
