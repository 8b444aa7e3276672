"""One store, as this process reports to it and reads the fleet back from it.

See the package's docstring for the keys, the roster and who wins which race.
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..process import Identity, identity
from ..sharedcache import CacheUnavailable

if TYPE_CHECKING:
    from ..breaker import CircuitBreaker
    from ..sharedcache import SharedCache
    from ..stores import BreakerStore

WIRE_VERSION = 1
BUCKET = 5  # seconds of calls per bucket
MINUTE = 60
KEEP_MINUTES = 63  # the timeline's hour, the minute in progress and a margin
ROSTER_MINUTES = 10  # a process signs the roster once per block of this many minutes
GAP = 4  # empty roster slots in a row that end a reader's scan
MAX_SLOTS = 1024  # processes per block at most (a bound on a broken cache's scan)
HEARTBEAT = 5.0  # seconds: an idle process writes at least this often (a third of the timeout)
OUTCOMES = ("success", "failure", "rejected", "ignored")


def _shared_cache(store: BreakerStore) -> SharedCache | None:
    """The shared cache behind a store, if it has one (``CacheStore``)."""
    return getattr(store, "shared_cache", None) if store.shared else None


def _prefix(store: BreakerStore) -> str:
    return f"{getattr(store, 'key_prefix', 'resilience')}:fleet"


def _empty_bucket() -> list[Any]:
    return [0] * len(OUTCOMES) + [{}]  # the counts in OUTCOMES order, then {latency bin: count}


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
