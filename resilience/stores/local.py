"""State in this process only (the default): thread-safe, no I/O."""

from __future__ import annotations

import math
import threading
from collections import deque

from ..clock import SYSTEM_CLOCK, Clock, Timebase
from ..state import Bucket, Record
from .base import BreakerStore, Cell, ProbeSlots, Windows, live_stores

HISTORY = 100  # decisions kept for ``history()``


class LocalStore(BreakerStore):
    """One process, one truth: every count is exact and every success is seen at once."""

    kind = "local"

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock = clock or SYSTEM_CLOCK
        self.timebase = Timebase(self.clock)
        self._lock = threading.Lock()
        self._cells: dict[str, Cell] = {}
        self._history: dict[str, deque[Record]] = {}
        self._probes = ProbeSlots()
        self._windows = Windows()
        live_stores.add(self)

    def after_fork(self) -> None:
        self._lock = threading.Lock()

    def cell(self, name: str) -> Cell:
        cell = self._cells.get(name)
        if cell is None:
            with self._lock:
                # Never due: nothing to refresh from, and successes are seen at once.
                cell = self._cells.setdefault(name, Cell(name, math.inf, math.inf, alert=False))
                self._history.setdefault(name, deque(maxlen=HISTORY))
        return cell

    def transition(self, name: str, expected: Record, new: Record) -> Record | None:
        with self._lock:
            cell = self._cells[name]
            if cell.rec.uid != expected.uid or cell.rec.epoch != expected.epoch:
                return None
            self._probes.forget(name, cell.rec.epoch)
            self._windows.forget(cell.rec.uid or "initial")
            cell.rec = cell.base = new
            cell.failures = 0
            self._history[name].append(new)
            return new

    def add_failure(self, name: str, rec: Record, threshold: int, weight: int = 1) -> int:
        with self._lock:
            cell = self._cells[name]
            if cell.rec.uid == rec.uid:
                cell.failures += weight
            return cell.failures

    def note_success(self, name: str, rec: Record) -> None:
        with self._lock:
            cell = self._cells[name]
            if cell.rec.uid == rec.uid:
                cell.failures = 0

    def acquire_probe(self, name: str, rec: Record, window: int, limit: int) -> int:
        with self._lock:
            if self._cells[name].rec.uid != rec.uid:
                return 0
            return self._probes.take(name, rec.epoch, window, limit)

    def release_probe(self, name: str, rec: Record, window: int, slot: int) -> None:
        with self._lock:
            self._probes.give_back(name, rec.epoch, window, slot)

    def probe_succeeded(self, name: str, rec: Record) -> int:
        with self._lock:
            return self._windows.succeeded(rec.uid)

    def probe_progress(self, name: str, rec: Record, window: int, limit: int) -> tuple[int, int]:
        with self._lock:
            return self._probes.taken(name, rec.epoch, window), self._windows.successes(rec.uid)

    def tally(
        self, name: str, rec: Record, second: int, delta: Bucket, horizon: int, now: int
    ) -> Bucket:
        with self._lock:
            return self._windows.add(rec.uid or "initial", second, delta, horizon, now)

    def history(self, name: str, limit: int) -> list[Record]:
        self.cell(name)
        return list(self._history[name])[-limit:]
