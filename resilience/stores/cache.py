"""State shared through Django's cache (Redis in production) by every process and host.

Layout, under ``<prefix>:<breaker>:``
  ``rec:<epoch>``              each decision, written once with ``add``; the newest never
                               expires, older ones after ``record_ttl``
  ``epoch``                    a hint of the newest epoch (readers walk forward from it)
  ``run:<uid>``                the current run of failures: a new token on each success told
  ``fail:<uid>:<run>``         consecutive failures in that run (``incr``, or slots; counting.py)
  ``failed:<uid>``             a new token on each failure of the decision: has anyone failed
                               since this process looked? (a count would expire a week after
                               the first failure and could come back to the figure remembered)
  ``win:<uid>:<second>``       the calls of one second, every process's, packed (window rules)
  ``probe:<epoch>:<uid>:<window>:<slot>``  probe permits, one ``add`` each
  ``ok:<uid>``                 probes of an open decision that succeeded (SUCCESS_THRESHOLD)
(counts and permits are filed under the decision's uid: epochs are reused after a flush)

Who wins which race, and why:
- Two processes deciding at once: epoch N+1 is written with ``add``; the
  loser reads the winner and adopts it. Decisions are derived from the one
  before (``parent``), so a stale view cannot overwrite a newer state.
- "Consecutive" across the fleet: a failure reads the current run and
  counts in it, so every failure is counted at once; a success starts a new
  run. While any process has failed lately (``failed`` changed since this
  process last looked, or it failed itself), every success is told at once:
  one ``set``, so the breaker opens on ``threshold`` failures with no success
  between them at any rate. While nobody fails, a success is told at most
  every ``success_interval`` seconds (no I/O on the closed path); in the
  first ``sync_interval`` of failures after such a quiet spell, a process
  that has not failed itself yet may tell its successes that late. A
  process's view of the state is at most ``sync_interval`` old.
- The window rules: each process sends the calls it made since its last
  send into the current second's bucket (one ``incr`` of three packed
  counts) and reads the window's buckets (one ``get_many``), every
  ``sync_interval``: two round trips a process per interval, none per call.
- A store that lost its history (FLUSHALL, restarted empty, a dropped
  write): epochs restart there, uids do not, so epochs order nothing across
  the loss. A process whose decision is no longer in the store compares it
  with the store's newest: the newer decision wins, except that an
  operator's forced state beats automatic decisions made without knowing it
  (``Record.outranks``). Losers adopt, winners republish on top, knowing
  what the record they sit on knew (``Record.placed_on``: the operator's
  latest word is carried up); an empty store is given back any decision, a
  plain "closed" too (it may be newer than an open restored after it).
- Probe permits are one ``add`` per slot, keyed by the open decision and
  its window: at most ``half_open_max_calls`` per window across the fleet.
- When the cache is away (``SharedCache`` says so, at once, after one
  failed operation), the breaker goes on with this process's state; what it
  decides meanwhile is "dirty" and settled as above when the cache returns.
- Times are on the store's clock (``Timebase``): a host minutes off neither
  stretches nor cuts an open.
"""

from __future__ import annotations

import contextlib
import math
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..clock import SYSTEM_CLOCK, Clock
from ..conf import DEFAULTS
from ..scope import current_scope
from ..sharedcache import CacheUnavailable, SharedCache, shared_cache
from ..state import Bucket, Record, initial_record, new_uid
from .base import BreakerStore, Cell, ProbeSlots, Windows, live_stores
from .counting import Counter, counter_for

T = TypeVar("T")

_OPTIONS = DEFAULTS["STORE_OPTIONS"]
SCAN = 8  # records read per round trip when walking
BACKTRACK = 64  # epochs below a pointer whose record was lost that are searched
RECONCILE_ROUNDS = 3  # lost races settled in one refresh before trying again later


class CacheStore(BreakerStore):
    """Breaker state shared through a Django cache alias; see the module docstring."""

    kind = "cache"
    shared = True

    def __init__(
        self,
        *,
        cache_alias: str = _OPTIONS["CACHE_ALIAS"],
        sync_interval: float = _OPTIONS["SYNC_INTERVAL"],
        success_interval: float = _OPTIONS["SUCCESS_INTERVAL"],
        outage_retry_interval: float = _OPTIONS["OUTAGE_RETRY_INTERVAL"],
        operation_timeout: float = _OPTIONS["OPERATION_TIMEOUT"],
        key_prefix: str = _OPTIONS["KEY_PREFIX"],
        record_ttl: float = _OPTIONS["RECORD_TTL"],
        clock: Clock | None = None,
        cache: Any = None,
        shared: SharedCache | None = None,
        recover_inline: bool = False,
    ) -> None:
        self.cache_alias = cache_alias
        self.sync_interval = float(sync_interval)
        self.success_interval = float(success_interval)
        self.key_prefix = key_prefix
        self.record_ttl = int(record_ttl)
        self.clock = clock or SYSTEM_CLOCK
        if shared is None and cache is None and clock is None and not recover_inline:
            shared = shared_cache(cache_alias)  # the process's gate, shared with the fallbacks
            shared.retry_interval = float(outage_retry_interval)
            shared.operation_timeout = float(operation_timeout)
        self.shared_cache = shared or SharedCache(
            cache_alias,
            cache=cache,
            clock=self.clock,
            retry_interval=outage_retry_interval,
            recover_inline=recover_inline,
        )
        self.timebase = self.shared_cache.timebase
        self.shared_cache.on_return.append(weakref.WeakMethod(self._cache_returned))
        self._counter: Counter | None = None
        self._lock = threading.Lock()
        self._cells: dict[str, Cell] = {}
        self._probes = ProbeSlots()  # used only while the cache is away
        self._windows = Windows()  # used only while the cache is away
        live_stores.add(self)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock | None = None) -> CacheStore:
        known = {
            "CACHE_ALIAS": "cache_alias",
            "SYNC_INTERVAL": "sync_interval",
            "SUCCESS_INTERVAL": "success_interval",
            "OUTAGE_RETRY_INTERVAL": "outage_retry_interval",
            "OPERATION_TIMEOUT": "operation_timeout",
            "KEY_PREFIX": "key_prefix",
            "RECORD_TTL": "record_ttl",
        }
        kwargs = {known[key]: value for key, value in options.items() if key in known}
        return cls(clock=clock, **kwargs)

    def __repr__(self) -> str:
        return f"CacheStore(cache_alias={self.cache_alias!r})"

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        for cell in self._cells.values():
            cell.syncing = threading.Lock()
            cell.sync_due = -math.inf  # the child reads the shared state on first use

    # plumbing

    @property
    def healthy(self) -> bool:
        return self.shared_cache.healthy

    def now(self) -> float:
        return self.shared_cache.now()

    @property
    def counter(self) -> Counter:
        if self._counter is None:
            self._counter = counter_for(self.shared_cache.cache)
        return self._counter

    def _key(self, name: str, *parts: object) -> str:
        return ":".join((self.key_prefix, name, *map(str, parts)))

    def _io(self, operation: Callable[[Any], T]) -> T:
        return self.shared_cache.run(operation)

    def cell(self, name: str) -> Cell:
        cell = self._cells.get(name)
        if cell is None:
            with self._lock:
                # Due at once: a new process learns the shared state on first use.
                cell = self._cells.setdefault(name, Cell(name, -math.inf, -math.inf, alert=True))
        return cell

    def _cache_returned(self) -> None:
        """Settle what was decided meanwhile at once, not at the next call (there may be none)."""
        for cell in list(self._cells.values()):
            cell.sync_due = -math.inf
            if cell.dirty:
                self.sync(cell.name, force=True)

    # reading the shared state

    def sync(self, name: str, *, force: bool = False) -> None:
        cell = self.cell(name)
        now = self.clock.monotonic()
        if not force and (now < cell.sync_due or self._looked_in_this_request(name)):
            return
        # Push the due time first, so other threads keep to the fast path
        # instead of queueing for the same refresh.
        cell.sync_due = now + self.sync_interval
        if not cell.syncing.acquire(blocking=False):
            # Another thread is refreshing this cell: calls made while it does (a
            # round trip) keep the view it is replacing, rather than queue behind it.
            return
        try:
            self._pull(cell)
        except CacheUnavailable:
            pass
        finally:
            cell.syncing.release()

    def _looked_in_this_request(self, name: str) -> bool:
        """While the cache is slow, a request reads the shared state once, not every
        ``sync_interval`` (each look would cost it a slow round trip)."""
        scope = current_scope()
        if scope is None:
            return False
        seen = name in scope.looked
        scope.looked.add(name)
        return seen and self.shared_cache.slow

    def _pull(self, cell: Cell) -> None:
        """Bring the cell in line with the cache, settling any divergence (see the docstring)."""
        timebase = self.timebase
        if timebase.due():
            # The store's clock first: the decisions compared below carry its times,
            # and without it this host's clock would judge them (CacheUnavailable).
            self._io(lambda c: None)
            timebase.measure()
        if cell.dirty and cell.offset != timebase.offset:
            cell.rec = cell.rec.shifted(timebase.offset - cell.offset)
            cell.offset = timebase.offset
        for _ in range(RECONCILE_ROUNDS):
            if self._settled(cell):
                break
        cell.last_sync = self.clock.monotonic()

    def _settled(self, cell: Cell) -> bool:
        """One look at the cache; False when a race was lost and another look is worth it."""
        name, base, rec = cell.name, cell.base, cell.rec
        pointer_key = self._key(name, "epoch")
        known_key = self._key(name, "rec", base.epoch)
        next_key = self._key(name, "rec", base.epoch + 1)
        run_key = self._key(name, "run", _tag(rec))
        failed_key = self._key(name, "failed", _tag(rec))
        count_keys = self.counter.keys(self._key(name, "fail", _tag(rec), cell.run))
        found = self._io(
            lambda c: c.get_many(
                [pointer_key, known_key, next_key, run_key, failed_key, *count_keys]
            )
        )
        pointer = int(found.get(pointer_key) or 0)
        known = Record.from_wire(found.get(known_key))
        intact = base.initial or (known is not None and known.uid == base.uid)
        if not intact:
            head = self._find_head(name, pointer)
        elif next_key in found or pointer > base.epoch:
            head = self._walk(name, base.epoch + 1, pointer) or known or base
        else:
            head = known or base
        if intact and not cell.dirty:
            if head.uid != rec.uid or head.epoch != rec.epoch:
                self._adopt(cell, head)
            else:
                self._read_count(cell, found, run_key)
                # Somebody failed since the last look (or, at the first, ever).
                last_failure = found.get(failed_key)
                cell.alert = last_failure != cell.last_failure
                cell.last_failure = last_failure
            return True
        return self._settle(cell, head)

    def _settle(self, cell: Cell, head: Record | None) -> bool:
        """Ours was decided offline, or the store lost its history: the better decision stays."""
        mine = cell.rec
        if head is None or head.initial:  # an empty store
            if mine.initial:
                self._adopt(cell, initial_record())
                return True
            # Every decision goes back, a plain "closed" too: it may be newer than an open
            # that another process will restore next, and ``outranks`` settles which stays.
            return self._restore(cell, mine.placed_on(None))
        if mine.initial or head.uid == mine.uid:
            self._adopt(cell, head)
            return True
        if not mine.outranks(head):
            if head.knows_less_than(mine):  # keep the operator's latest word with the newer state
                return self._restore(cell, head.told(mine.manual_at, on=head))
            self._adopt(cell, head)
            return True
        # Ours beats the head. But a head restored by a process that missed a later
        # reset may sit on a newer decision it beat only by force: that one stands.
        below = self._restored_over(cell.name, head)
        if below is not None and below.outranks(mine):
            return self._restore(cell, below.told(mine.manual_at, on=head))
        return self._restore(cell, mine.placed_on(head))

    def _restored_over(self, name: str, head: Record) -> Record | None:
        """The newer decision ``head`` was restored on top of, if it was."""
        if head.epoch < 2 or not head.parent:
            return None
        key = self._key(name, "rec", head.epoch - 1)
        below = Record.from_wire(self._io(lambda c: c.get(key)))
        if below is None or below.uid != head.parent or not below.outranks_in_time(head):
            return None
        return below

    def _restore(self, cell: Cell, record: Record) -> bool:
        if not self._publish(cell.name, record):
            return False  # someone wrote that epoch first: look again
        with self._lock:
            self._install(cell, record, published=True)
        return True

    def _read_count(self, cell: Cell, found: dict[str, Any], run_key: str) -> None:
        run = found.get(run_key) or ""
        if run != cell.run:  # a success started a new run since: its count is read next time
            cell.run, cell.failures = run, 0
            return
        cell.failures = self.counter.read(found, self._key(cell.name, "fail", _tag(cell.rec), run))

    def _scan(self, name: str, start: int) -> Record | None:
        """The newest record of an unbroken run of epochs from ``start``."""
        head = None
        while True:
            keys = [self._key(name, "rec", epoch) for epoch in range(start, start + SCAN)]
            found = self._io(lambda c, keys=keys: c.get_many(keys))
            newest = None
            for key in keys:
                record = Record.from_wire(found.get(key))
                if record is None:
                    break
                newest = record
            if newest is None:
                return head
            head = newest
            if newest.epoch < start + SCAN - 1:
                return head
            start = newest.epoch + 1

    def _walk(self, name: str, start: int, pointer: int) -> Record | None:
        """Forward from ``start``, jumping to the pointer's hint (older records may expire).

        The pointer's own record may be missing (a dropped write): then the head
        is the newest record near it, as ``_find_head`` finds it.
        """
        if pointer > start:
            head = self._find_head(name, pointer)
            if head is not None and head.epoch >= start:
                return head
        return self._scan(name, start)

    def _find_head(self, name: str, pointer: int) -> Record | None:
        """The store's newest record when ours is not there; None when the store is empty.

        The pointer's own record may be missing (a dropped write): then the
        newest one below it is the head. Only without a pointer is the store
        read from epoch 1, as after a flush.
        """
        if not pointer:
            return self._scan(name, 1)
        head = self._scan(name, pointer)
        if head is not None:
            return head
        for top in range(pointer - 1, max(0, pointer - BACKTRACK), -SCAN):
            epochs = range(top, max(0, top - SCAN), -1)
            keys = [self._key(name, "rec", epoch) for epoch in epochs]
            found = self._io(lambda c, keys=keys: c.get_many(keys))
            for key in keys:  # newest first
                if (record := Record.from_wire(found.get(key))) is not None:
                    return record
        return None

    def _adopt(self, cell: Cell, head: Record) -> None:
        with self._lock:
            self._probes.forget(cell.name, cell.rec.epoch)
            self._windows.forget(_tag(cell.rec))
            cell.rec = cell.base = head
            cell.dirty = False
            cell.failures = 0
            cell.run = ""
            cell.alert, cell.last_failure = True, None

    def _install(self, cell: Cell, record: Record, *, published: bool) -> None:
        """Make ``record`` this process's state (caller holds the lock)."""
        self._probes.forget(cell.name, cell.rec.epoch)
        self._windows.forget(_tag(cell.rec))
        cell.rec = record
        cell.failures = 0
        cell.run = ""
        cell.alert, cell.last_failure = True, None
        cell.dirty = not published
        if published:
            cell.base = record
        else:
            cell.offset = self.timebase.offset

    def _publish(self, name: str, record: Record) -> bool:
        """Write one epoch's record if nobody has, on top of its parent; the previous may expire.

        The parent is checked first: after a flush the epoch numbers are reused,
        and a process that has not looked since must not write its successor on
        top of somebody else's history.
        """
        if record.parent:
            below = self._key(name, "rec", record.epoch - 1)
            found = Record.from_wire(self._io(lambda c: c.get(below)))
            if found is None or found.uid != record.parent:
                return False
        wire = record.to_wire()
        key = self._key(name, "rec", record.epoch)
        if not self._io(lambda c: c.add(key, wire, None)):
            return False
        self._io(lambda c: c.set(self._key(name, "epoch"), record.epoch, None))
        if record.epoch > 1:
            previous = self._key(name, "rec", record.epoch - 1)
            with contextlib.suppress(CacheUnavailable):  # it stays: harmless
                self._io(lambda c: c.touch(previous, self.record_ttl))
        return True

    # writing

    def transition(self, name: str, expected: Record, new: Record) -> Record | None:
        cell = self.cell(name)
        if not _same(cell.rec, expected):
            return None
        if not cell.dirty:
            try:
                for _ in range(2):
                    if self._publish(name, new):
                        with self._lock:
                            self._install(cell, new, published=True)
                        return new
                    cell.sync_due = -math.inf
                    self.sync(name)  # lost the race, or our parent was lost: look again
                    current = cell.rec
                    if current.uid != expected.uid or cell.dirty:
                        return None  # somebody else decided first
                    new = new.placed_on(current)  # it was restored
                return None
            except CacheUnavailable:
                pass  # decided here; settled when the cache returns
        with self._lock:
            if not _same(cell.rec, expected):
                return None
            self._install(cell, new, published=False)
        return new

    def add_failure(self, name: str, rec: Record, threshold: int, weight: int = 1) -> int:
        cell = self.cell(name)
        if not cell.dirty:
            try:
                return self._count_shared(cell, rec, weight)
            except CacheUnavailable:
                pass
        with self._lock:
            if _same(cell.rec, rec):
                cell.failures += weight
            return cell.failures

    def _count_shared(self, cell: Cell, rec: Record, weight: int) -> int:
        """Count in the current run; a success told meanwhile moves the count to the new run."""
        name = cell.name
        run_key = self._key(name, "run", _tag(rec))
        pointer_key = self._key(name, "epoch")
        rec_key = self._key(name, "rec", rec.epoch)
        found = self._io(lambda c: c.get_many([run_key, pointer_key, rec_key]))
        stored = Record.from_wire(found.get(rec_key))
        moved_on = int(found.get(pointer_key) or 0) > rec.epoch
        if moved_on or (stored is not None and stored.uid != rec.uid):
            cell.sync_due = -math.inf  # the state moved on (or was replaced): not this epoch's
            return 0
        run = found.get(run_key) or ""
        known = cell.failures if run == cell.run else 0
        for _ in range(3):
            count = self._add(self._key(name, "fail", _tag(rec), run), known, weight)
            latest = self._io(lambda c: c.get(run_key)) or ""
            if latest == run:
                break
            run, known = latest, 0  # counted in a run a success had just ended: count anew
        failed_key, token = self._key(name, "failed", _tag(rec)), new_uid()
        self._io(lambda c: c.set(failed_key, token, self.record_ttl))
        with self._lock:
            if _same(cell.rec, rec):
                cell.run, cell.failures = run, count
                cell.alert, cell.last_failure = True, token
        return count

    def _add(self, key: str, known: int, weight: int) -> int:
        return self._io(lambda c: self.counter.add(c, key, self.record_ttl, known, weight))

    def note_success(self, name: str, rec: Record) -> None:
        cell = self.cell(name)
        cell.success_due = self.clock.monotonic() + self.success_interval
        if not _same(cell.rec, rec):
            return
        if not cell.dirty:
            token = new_uid()
            run_key = self._key(name, "run", _tag(rec))
            # Nobody waits for it: behind the request while the cache is slow.
            with contextlib.suppress(CacheUnavailable):  # then only this process knows
                self.shared_cache.write(run_key, lambda c: c.set(run_key, token, self.record_ttl))
                cell.run = token
        cell.failures = 0

    def acquire_probe(self, name: str, rec: Record, window: int, limit: int) -> int:
        cell = self.cell(name)
        if not cell.dirty:
            ttl = int(rec.open_duration * 2) + 60
            try:
                for slot in range(1, limit + 1):
                    key = self._key(name, "probe", rec.epoch, rec.uid, window, slot)
                    if self._io(lambda c, key=key: c.add(key, 1, ttl)):
                        return slot
                return 0
            except CacheUnavailable:
                pass
        with self._lock:
            if not _same(cell.rec, rec):
                return 0
            return self._probes.take(name, rec.epoch, window, limit)

    def release_probe(self, name: str, rec: Record, window: int, slot: int) -> None:
        key = self._key(name, "probe", rec.epoch, rec.uid, window, slot)
        with contextlib.suppress(CacheUnavailable):  # the slot expires by itself
            self._io(lambda c: c.delete(key))
        with self._lock:
            self._probes.give_back(name, rec.epoch, window, slot)

    def probe_succeeded(self, name: str, rec: Record) -> int:
        if not self.cell(name).dirty:
            key = self._key(name, "ok", _tag(rec))
            with contextlib.suppress(CacheUnavailable):
                return self._add(key, 0, 1)
        with self._lock:
            return self._windows.succeeded(_tag(rec))

    def probe_progress(self, name: str, rec: Record, window: int, limit: int) -> tuple[int, int]:
        slots = [
            self._key(name, "probe", rec.epoch, rec.uid, window, n) for n in range(1, limit + 1)
        ]
        ok = self._key(name, "ok", _tag(rec))
        try:
            found = self._io(lambda c: c.get_many([*slots, *self.counter.keys(ok)]))
        except CacheUnavailable:
            with self._lock:
                taken = self._probes.taken(name, rec.epoch, window)
                return taken, self._windows.successes(_tag(rec))
        return sum(1 for key in slots if key in found), self.counter.read(found, ok)

    def tally(
        self, name: str, rec: Record, second: int, delta: Bucket, horizon: int, now: int
    ) -> Bucket:
        tag = _tag(rec)
        if not self.cell(name).dirty:
            buckets = [self._key(name, "win", tag, s) for s in range(now - horizon + 1, now + 1)]
            keys = [key for bucket in buckets for key in self.counter.keys(bucket)]
            ttl = horizon + 60
            try:
                if any(delta) and second > now - horizon:
                    into, amount = self._key(name, "win", tag, second), delta.packed()
                    self._io(lambda c: self.counter.deposit(c, into, ttl, amount))
                found = self._io(lambda c: c.get_many(keys))
            except CacheUnavailable:
                pass
            else:
                totals = (Bucket.unpack(self.counter.total(found, b)) for b in buckets)
                return sum(totals, Bucket())
        with self._lock:
            return self._windows.add(tag, second, delta, horizon, now)

    def holds(self, name: str, record: Record) -> bool:
        key = self._key(name, "rec", record.epoch)
        try:
            found = Record.from_wire(self._io(lambda c: c.get(key)))
        except CacheUnavailable:
            return False
        return found is not None and found.uid == record.uid

    def withdraw(self, name: str, record: Record) -> None:
        cell = self.cell(name)
        with self._lock:
            if cell.dirty and cell.rec.uid == record.uid:
                self._install(cell, cell.base, published=True)
                cell.sync_due = -math.inf

    def history(self, name: str, limit: int) -> list[Record]:
        self.sync(name)
        cell = self.cell(name)
        head = cell.base.epoch
        keys = [
            self._key(name, "rec", epoch) for epoch in range(max(1, head - limit + 1), head + 1)
        ]
        try:
            found = self._io(lambda c: c.get_many(keys))
        except CacheUnavailable:
            found = {}
        records = [rec for key in keys if (rec := Record.from_wire(found.get(key))) is not None]
        if cell.dirty or not records:
            records.append(cell.rec)
        return [rec for rec in records if not rec.initial][-limit:]


def _tag(rec: Record) -> str:
    """What a decision's counts are filed under: its uid (epochs are reused after a flush)."""
    return rec.uid or "initial"


def _same(a: Record, b: Record) -> bool:
    return a.uid == b.uid and a.epoch == b.epoch
