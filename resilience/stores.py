"""Where a breaker's state lives: this process (``LocalStore``) or Django's cache (``CacheStore``).

Both keep, per breaker name, a ``Cell``: the current ``Record``, the count of
consecutive failures and when the cell must next be refreshed. The breaker's
hot path reads the cell and nothing else; a store is asked only when a call
fails, a transition is due, a probe is wanted or the refresh time has come.

The store is chosen by import string (``RESILIENCE["STORE"]``) and built with
``from_options(RESILIENCE["STORE_OPTIONS"])``, as django-axes picks handlers.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, ClassVar, TypeVar

from django.utils.module_loading import import_string

from .clock import SYSTEM_CLOCK, Clock
from .errors import describe
from .logs import log_event
from .state import Record, initial_record

logger = logging.getLogger("resilience.stores")

T = TypeVar("T")


class Cell:
    """One breaker's state as this process sees it; read lock-free on the hot path."""

    __slots__ = ("base_epoch", "dirty", "failures", "name", "rec", "sync_due")

    def __init__(self, name: str, sync_due: float) -> None:
        self.name = name
        self.rec: Record = initial_record()
        self.failures = 0  # consecutive failures in ``rec``'s epoch
        self.sync_due = sync_due  # monotonic time of the next refresh (inf: never)
        self.dirty = False  # transitions made while the shared store was away
        self.base_epoch = 0  # the last epoch known to be in the shared store


class _ProbeSlots:
    """Probe permits held in memory, per (breaker, epoch, window)."""

    def __init__(self) -> None:
        self._taken: dict[tuple[str, int, int], set[int]] = {}

    def take(self, name: str, epoch: int, window: int, limit: int) -> int:
        taken = self._taken.setdefault((name, epoch, window), set())
        for slot in range(1, limit + 1):
            if slot not in taken:
                taken.add(slot)
                return slot
        return 0

    def give_back(self, name: str, epoch: int, window: int, slot: int) -> None:
        self._taken.get((name, epoch, window), set()).discard(slot)

    def forget(self, name: str, epoch: int) -> None:
        for key in [key for key in self._taken if key[0] == name and key[1] <= epoch]:
            del self._taken[key]


class BreakerStore:
    """What a breaker needs from the place its state lives."""

    kind: ClassVar[str] = "base"
    shared: ClassVar[bool] = False  # whether other processes see this state
    clock: Clock

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], *, clock: Clock | None = None
    ) -> BreakerStore:
        """Build from ``STORE_OPTIONS``; a store takes the options it knows."""
        return cls(clock=clock)  # type: ignore[call-arg]

    @property
    def healthy(self) -> bool:
        return True

    def cell(self, name: str) -> Cell:
        raise NotImplementedError

    def transition(self, name: str, expected: Record, new: Record) -> Record | None:
        """Install ``new`` (epoch ``expected.epoch + 1``) unless the state has moved on.

        Returns ``new`` when this call installed it, None when it lost to a
        newer transition (the cell then holds the winner).
        """
        raise NotImplementedError

    def add_failure(self, name: str, rec: Record) -> int:
        """Count one failure in ``rec``'s epoch; return the consecutive count."""
        raise NotImplementedError

    def clear_failures(self, name: str, rec: Record) -> None:
        raise NotImplementedError

    def acquire_probe(self, name: str, rec: Record, window: int, limit: int) -> int:
        """Take one of ``limit`` probe slots of this open epoch's window; 0 if none is free."""
        raise NotImplementedError

    def release_probe(self, name: str, rec: Record, window: int, slot: int) -> None:
        raise NotImplementedError

    def sync(self, name: str, *, force: bool = False) -> None:
        """Refresh the cell from the shared state when due (or now, if forced)."""

    def after_fork(self) -> None:
        """In a forked child (gunicorn, Celery prefork): fresh locks, a fresh look."""


# Stores whose locks a fork may have copied while held by another thread.
_live_stores: weakref.WeakSet[BreakerStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_live_stores):
        store.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class LocalStore(BreakerStore):
    """State in this process only (the default): thread-safe, no I/O."""

    kind = "local"

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock = clock or SYSTEM_CLOCK
        self._lock = threading.Lock()
        self._cells: dict[str, Cell] = {}
        self._probes = _ProbeSlots()
        _live_stores.add(self)

    def after_fork(self) -> None:
        self._lock = threading.Lock()

    def cell(self, name: str) -> Cell:
        cell = self._cells.get(name)
        if cell is None:
            with self._lock:
                cell = self._cells.setdefault(name, Cell(name, math.inf))
        return cell

    def transition(self, name: str, expected: Record, new: Record) -> Record | None:
        with self._lock:
            cell = self._cells[name]
            if cell.rec.epoch != expected.epoch:
                return None
            self._probes.forget(name, cell.rec.epoch)
            cell.rec = new.renumbered(expected.epoch + 1)
            cell.failures = 0
            return cell.rec

    def add_failure(self, name: str, rec: Record) -> int:
        with self._lock:
            cell = self._cells[name]
            if cell.rec.epoch == rec.epoch:
                cell.failures += 1
            return cell.failures

    def clear_failures(self, name: str, rec: Record) -> None:
        with self._lock:
            cell = self._cells[name]
            if cell.rec.epoch == rec.epoch:
                cell.failures = 0

    def acquire_probe(self, name: str, rec: Record, window: int, limit: int) -> int:
        with self._lock:
            if self._cells[name].rec.epoch != rec.epoch:
                return 0
            return self._probes.take(name, rec.epoch, window, limit)

    def release_probe(self, name: str, rec: Record, window: int, slot: int) -> None:
        with self._lock:
            self._probes.give_back(name, rec.epoch, window, slot)


class _CacheDown(Exception):
    """The cache raised; the store carries on with local state."""


class CacheStore(BreakerStore):
    """State shared through Django's cache (Redis in production) by every process and host.

    Layout, under ``<prefix>:<breaker>:``
      ``rec:<epoch>``   the immutable record of each epoch, written with ``add``
      ``epoch``         a hint of the latest epoch (readers walk forward from it)
      ``fail:<epoch>``  consecutive failures in that epoch (``add``/``incr``)
      ``probe:<epoch>:<window>:<slot>``  probe permits, one ``add`` each

    Guarantees, and how:
    - A process that starts never resets anything: it only reads until it has
      something to report; a missing key means "closed, nothing counted".
    - Transitions cannot be lost or reordered: epoch N+1 is written with an
      atomic ``add``; a process that loses the race reads the winner and
      adopts it. Each record is derived from the one before, and ``opened_at``
      is never set below its predecessor's, so it never moves backwards.
    - At most ``half_open_max_calls`` probes per recovery window across all
      processes: one ``add`` per slot, keyed by the open epoch (one epoch, one
      ``opened_at``) and the window number. ``add`` is atomic on Redis,
      Memcached, the database and the local-memory caches.
    - When the cache fails, the breaker goes on with this process's state,
      logs that once, retries every ``outage_retry_interval`` seconds, and on
      return publishes what it decided meanwhile (newest transition wins)
      or adopts what others decided.

    Why mirroring is safe. The closed path reads the cell, refreshed from the
    cache at most every ``sync_interval`` seconds, instead of asking the
    cache on each call. Staleness can only cost this: for up to one interval
    after another process opened the breaker, this process still lets calls
    through (as if they had started just before the trip), or still rejects
    after another closed it. Nothing that decides the state is mirrored:
    failures are written through (``incr``) so trips are never delayed,
    transitions are ``add``-guarded so a stale view can never overwrite a newer
    state (its write fails and it adopts the winner), and probe permits are
    always taken in the cache. A process about to probe refreshes first.
    """

    kind = "cache"
    shared = True

    def __init__(
        self,
        *,
        cache_alias: str = "default",
        sync_interval: float = 0.5,
        outage_retry_interval: float = 1.0,
        key_prefix: str = "resilience",
        record_ttl: float = 7 * 24 * 3600,
        clock: Clock | None = None,
        cache: Any = None,
    ) -> None:
        self.cache_alias = cache_alias
        self.sync_interval = float(sync_interval)
        self.outage_retry_interval = float(outage_retry_interval)
        self.key_prefix = key_prefix
        self.record_ttl = int(record_ttl)
        self.clock = clock or SYSTEM_CLOCK
        self._cache_override = cache
        self._lock = threading.RLock()
        self._cells: dict[str, Cell] = {}
        self._probes = _ProbeSlots()  # used only while the cache is away
        self._healthy = True
        self._retry_at = 0.0
        self._down_since = 0.0
        _live_stores.add(self)

    def after_fork(self) -> None:
        self._lock = threading.RLock()
        for cell in self._cells.values():
            cell.sync_due = -math.inf  # the child reads the shared state on first use

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock | None = None) -> CacheStore:
        known = {
            "CACHE_ALIAS": "cache_alias",
            "SYNC_INTERVAL": "sync_interval",
            "OUTAGE_RETRY_INTERVAL": "outage_retry_interval",
            "KEY_PREFIX": "key_prefix",
            "RECORD_TTL": "record_ttl",
        }
        kwargs = {known[key]: value for key, value in options.items() if key in known}
        return cls(clock=clock, **kwargs)

    def __repr__(self) -> str:
        return f"CacheStore(cache_alias={self.cache_alias!r})"

    # --- plumbing -------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self._healthy

    def _cache(self) -> Any:
        if self._cache_override is not None:
            return self._cache_override
        from django.core.cache import caches

        return caches[self.cache_alias]  # per thread: look it up each time

    def _key(self, name: str, *parts: object) -> str:
        return ":".join((self.key_prefix, name, *map(str, parts)))

    def _io(self, operation: Callable[[Any], T]) -> T:
        try:
            return operation(self._cache())
        except Exception as exc:  # any cache failure means: go local
            self._went_down(exc)
            raise _CacheDown from exc

    def _went_down(self, exc: Exception) -> None:
        with self._lock:
            now = self.clock.monotonic()
            self._retry_at = now + self.outage_retry_interval
            for cell in self._cells.values():
                cell.sync_due = self._retry_at
            if not self._healthy:
                return
            self._healthy = False
            self._down_since = now
            for cell in self._cells.values():
                if not cell.dirty:
                    cell.base_epoch = cell.rec.epoch
        log_event(
            logger,
            logging.WARNING,
            "resilience.store_unavailable",
            store=self.kind,
            cache_alias=self.cache_alias,
            error=describe(exc),
            error_type=type(exc).__name__,
            fallback="breakers continue on this process's state until the cache returns",
        )

    def _available(self) -> bool:
        """Whether to use the cache now; tries to come back when the retry time has come."""
        if self._healthy:
            return True
        if self.clock.monotonic() < self._retry_at:
            return False
        with self._lock:
            if self._healthy:
                return True
            try:
                for cell in list(self._cells.values()):
                    self._pull(cell)
            except _CacheDown:
                return False
            self._healthy = True
            down_for = self.clock.monotonic() - self._down_since
        log_event(
            logger,
            logging.INFO,
            "resilience.store_recovered",
            store=self.kind,
            cache_alias=self.cache_alias,
            down_for=round(down_for, 3),
        )
        return True

    # --- reading the shared state ---------------------------------------------

    def cell(self, name: str) -> Cell:
        cell = self._cells.get(name)
        if cell is None:
            with self._lock:
                # Due at once: a new process learns the shared state on first use.
                cell = self._cells.setdefault(name, Cell(name, -math.inf))
        return cell

    def sync(self, name: str, *, force: bool = False) -> None:
        cell = self.cell(name)
        now = self.clock.monotonic()
        if not force and now < cell.sync_due:
            return
        # Push the due time first, so other threads keep to the fast path
        # instead of queueing for the same refresh.
        cell.sync_due = now + self.sync_interval
        if not self._available():
            return
        with self._lock:
            try:
                self._pull(cell)
            except _CacheDown:
                return

    def _head(self, cache: Any, name: str, start: int) -> Record | None:
        """The newest record at or after ``start`` (records are contiguous from there)."""
        head = None
        while True:
            keys = [self._key(name, "rec", epoch) for epoch in range(start, start + 8)]
            found = cache.get_many(keys)
            newest = None
            for key in keys:
                record = Record.from_wire(found.get(key))
                if record is None:
                    break
                newest = record
            if newest is None:
                return head
            head = newest
            if newest.epoch < start + 7:
                return head
            start = newest.epoch + 1

    def _pull(self, cell: Cell) -> None:
        """Bring the cell in line with the cache (caller holds the lock)."""
        name = cell.name
        known = cell.base_epoch if cell.dirty else cell.rec.epoch
        pointer_key = self._key(name, "epoch")
        known_key = self._key(name, "rec", known)
        next_key = self._key(name, "rec", known + 1)
        fail_key = self._key(name, "fail", known)
        found = self._io(lambda c: c.get_many([pointer_key, known_key, next_key, fail_key]))
        pointer = int(found.get(pointer_key) or 0)

        head: Record | None
        if next_key in found or pointer > known:
            head = self._io(lambda c: self._head(c, name, max(known + 1, pointer)))
            if head is None:
                head = self._io(lambda c: self._head(c, name, known + 1))
            if head is None:  # the pointer's record expired: closed long ago
                head = initial_record(pointer)
        elif known > 0 and known_key not in found:
            head = None  # the cache lost our epoch (flushed, restarted empty, evicted)
        else:
            head = Record.from_wire(found.get(known_key)) or initial_record(known)

        if head is None:
            self._settle(cell, cell.rec)
        elif cell.dirty:
            theirs_newer = head.epoch > known and (head.at or 0.0) > (cell.rec.at or 0.0)
            if theirs_newer:
                self._adopt(cell, head)
            else:
                self._settle(cell, _rebased(cell.rec, head))
        elif head.epoch != cell.rec.epoch:
            self._adopt(cell, head)
        else:
            cell.failures = int(found.get(fail_key) or 0)
        cell.sync_due = self.clock.monotonic() + self.sync_interval

    def _adopt(self, cell: Cell, head: Record | None) -> None:
        name = cell.name
        if head is None:  # lost a publish race: read the winner
            pointer = int(self._io(lambda c: c.get(self._key(name, "epoch"))) or 0)
            head = self._io(lambda c: self._head(c, name, max(cell.base_epoch + 1, pointer)))
            if head is None:
                return
        failures = self._io(lambda c: c.get(self._key(name, "fail", head.epoch)))
        cell.rec = head
        cell.failures = int(failures or 0)
        cell.dirty = False
        cell.base_epoch = head.epoch

    def _settle(self, cell: Cell, record: Record) -> None:
        """Publish what this process decided offline, or adopt what won instead."""
        if not self._publish(cell.name, record):
            self._adopt(cell, None)
            return
        cell.rec = record
        cell.failures = 0
        cell.dirty = False
        cell.base_epoch = record.epoch

    def _publish(self, name: str, record: Record) -> bool:
        """Write one epoch's record if nobody has; move the pointer hint."""
        wire = record.to_wire()
        key = self._key(name, "rec", record.epoch)
        if not self._io(lambda c: c.add(key, wire, self.record_ttl)):
            return False
        self._io(lambda c: c.set(self._key(name, "epoch"), record.epoch, None))
        return True

    # --- writing --------------------------------------------------------------

    def transition(self, name: str, expected: Record, new: Record) -> Record | None:
        new = new.renumbered(expected.epoch + 1)
        with self._lock:
            cell = self.cell(name)
            if cell.rec.epoch != expected.epoch:
                return None
            if self._available() and cell.rec.epoch == expected.epoch and not cell.dirty:
                try:
                    if self._publish(name, new):
                        self._install(cell, new)
                        return new
                    self._pull(cell)  # lost the race: learn the winner
                    return None
                except _CacheDown:
                    pass  # decided locally below, published on the cache's return
            if cell.rec.epoch != expected.epoch:
                return None
            cell.dirty = True  # published when the cache returns
            self._install(cell, new)
            return new

    def _install(self, cell: Cell, record: Record) -> None:
        self._probes.forget(cell.name, cell.rec.epoch)
        cell.rec = record
        cell.failures = 0
        if not cell.dirty:
            cell.base_epoch = record.epoch

    def add_failure(self, name: str, rec: Record) -> int:
        cell = self.cell(name)
        if self._available() and not cell.dirty:
            key = self._key(name, "fail", rec.epoch)
            try:
                count = self._io(lambda c: _incr_or_add(c, key, self.record_ttl))
            except _CacheDown:
                pass
            else:
                with self._lock:
                    if cell.rec.epoch == rec.epoch:
                        cell.failures = count
                return count
        with self._lock:
            if cell.rec.epoch == rec.epoch:
                cell.failures += 1
            return cell.failures

    def clear_failures(self, name: str, rec: Record) -> None:
        cell = self.cell(name)
        if self._available() and not cell.dirty:
            with contextlib.suppress(_CacheDown):  # counted locally below
                self._io(lambda c: c.delete(self._key(name, "fail", rec.epoch)))
        with self._lock:
            if cell.rec.epoch == rec.epoch:
                cell.failures = 0

    def acquire_probe(self, name: str, rec: Record, window: int, limit: int) -> int:
        cell = self.cell(name)
        if self._available() and not cell.dirty:
            ttl = int(rec.open_duration * 2) + 60
            try:
                for slot in range(1, limit + 1):
                    key = self._key(name, "probe", rec.epoch, window, slot)
                    if self._io(lambda c, key=key: c.add(key, 1, ttl)):
                        return slot
                return 0
            except _CacheDown:
                pass
        with self._lock:
            if cell.rec.epoch != rec.epoch:
                return 0
            return self._probes.take(name, rec.epoch, window, limit)

    def release_probe(self, name: str, rec: Record, window: int, slot: int) -> None:
        if self._available():
            key = self._key(name, "probe", rec.epoch, window, slot)
            with contextlib.suppress(_CacheDown):  # the slot expires by itself
                self._io(lambda c: c.delete(key))
        with self._lock:
            self._probes.give_back(name, rec.epoch, window, slot)


def _incr_or_add(cache: Any, key: str, ttl: int) -> int:
    """Atomic enough on every backend: ``add`` creates, ``incr`` counts."""
    for _ in range(3):
        if cache.add(key, 1, ttl):
            return 1
        try:
            return int(cache.incr(key))
        except ValueError:  # expired or deleted between the two: create it again
            continue
    return 1


def _rebased(local: Record, head: Record) -> Record:
    """A record decided offline, renumbered on top of the shared head, never going backwards."""
    record = local.renumbered(head.epoch + 1)
    floor = head.opened_at or 0.0
    if record.opened_at is not None and record.opened_at < floor:
        shift = floor - record.opened_at
        record = _shifted(record, shift)
    return record


def _shifted(record: Record, shift: float) -> Record:
    open_until = None if record.open_until is None else record.open_until + shift
    return replace(record, opened_at=(record.opened_at or 0.0) + shift, open_until=open_until)


def load_store(
    path: str, options: Mapping[str, Any], *, clock: Clock | None = None
) -> BreakerStore:
    """Build the store named by an import string (``RESILIENCE["STORE"]``)."""
    cls = import_string(path)
    if not (isinstance(cls, type) and issubclass(cls, BreakerStore)):
        raise TypeError(f"{path} is not a resilience.stores.BreakerStore subclass")
    return cls.from_options(options, clock=clock)
