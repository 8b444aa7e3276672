"""What a breaker needs from the place its state lives, and the cell it reads on every call.

A store keeps, per breaker name, a ``Cell``: the current ``Record``, the
consecutive-failure count as this process knows it, and when the cell must
next be refreshed. The breaker's hot path reads the cell and nothing else;
the store is asked only when a call fails, a success is due to be told, a
transition is due, a probe is wanted or the refresh time has come.

What a store keeps, per decision (its uid):
- the current run of consecutive failures (``add_failure``, ``note_success``);
- the calls of each second, for the window rules (``tally``);
- the probe permits of each recovery window, and the probes that succeeded
  (``acquire_probe``, ``release_probe``, ``probe_succeeded``).
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from ..clock import Clock, Timebase
from ..state import Bucket, Record, initial_record


class Cell:
    """One breaker's state as this process sees it; read lock-free on the hot path."""

    __slots__ = (
        "alert",
        "base",
        "dirty",
        "failures",
        "last_failure",
        "last_sync",
        "name",
        "offset",
        "rec",
        "run",
        "success_due",
        "sync_due",
        "syncing",
    )

    def __init__(self, name: str, sync_due: float, success_due: float, alert: bool) -> None:
        self.name = name
        self.rec: Record = initial_record()
        self.failures = 0  # consecutive failures in ``rec``'s epoch, as last counted or read
        # Another process may have failures in the current run that this one has not seen:
        # then every success is told at once (see CacheStore). Never so for a store in
        # this process, which sees every failure as it is counted.
        self.alert = alert
        self.last_failure: str | None = None  # the decision's latest failure (a token), as read
        self.sync_due = sync_due  # monotonic time of the next refresh (inf: never)
        self.success_due = success_due  # monotonic time a success must next be told (inf: never)
        self.dirty = False  # ``rec`` was decided while the shared store was away
        self.base: Record = self.rec  # the last record known to be in the shared store
        self.run = ""  # the shared store's current run of failures (changes on each success told)
        self.last_sync = -math.inf  # monotonic time of the last successful refresh
        self.offset = 0.0  # the store clock's offset when a dirty ``rec`` was decided
        self.syncing = threading.Lock()  # one refresh at a time; the others keep the mirror


class ProbeSlots:
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

    def taken(self, name: str, epoch: int, window: int) -> int:
        return len(self._taken.get((name, epoch, window), ()))

    def forget(self, name: str, epoch: int) -> None:
        for key in [key for key in self._taken if key[0] == name and key[1] <= epoch]:
            del self._taken[key]


class Windows:
    """Calls per second in memory, per decision: ``LocalStore``'s, and a shared store's offline."""

    def __init__(self) -> None:
        self._seconds: dict[str, dict[int, Bucket]] = {}
        self._successes: dict[str, int] = {}  # probes that succeeded, per open decision

    def add(self, uid: str, second: int, delta: Bucket, horizon: int, now: int) -> Bucket:
        """Add ``delta`` to ``second``; the sum over the ``horizon`` seconds up to ``now``."""
        seconds = self._seconds.setdefault(uid, {})
        first = now - horizon + 1
        if any(delta) and second >= first:
            seconds[second] = seconds.get(second, Bucket()) + delta
        for old in [s for s in seconds if s < first]:
            del seconds[old]
        return sum((b for s, b in seconds.items() if s <= now), Bucket())

    def succeeded(self, uid: str) -> int:
        self._successes[uid] = self._successes.get(uid, 0) + 1
        return self._successes[uid]

    def successes(self, uid: str) -> int:
        return self._successes.get(uid, 0)

    def forget(self, uid: str) -> None:
        self._seconds.pop(uid, None)
        self._successes.pop(uid, None)


class BreakerStore(ABC):
    """Where a breaker's state lives; subclasses are chosen by import string (``STORE``)."""

    kind: ClassVar[str] = "base"
    shared: ClassVar[bool] = False  # whether other processes see this state
    sync_interval: float | None = None  # seconds between looks at the shared state (None: never)
    clock: Clock
    timebase: Timebase

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], *, clock: Clock | None = None
    ) -> BreakerStore:
        """Build from ``STORE_OPTIONS``; a store takes the options it knows."""
        return cls(clock=clock)  # type: ignore[call-arg]

    @property
    def healthy(self) -> bool:
        """Whether the store is reachable (always, for a store in this process)."""
        return True

    def now(self) -> float:
        """Wall time on the clock that the processes sharing this store agree on."""
        return self.timebase.now()

    @abstractmethod
    def cell(self, name: str) -> Cell:
        """The cell of breaker ``name`` (created closed on first use)."""

    @abstractmethod
    def transition(self, name: str, expected: Record, new: Record) -> Record | None:
        """Install ``new`` (a successor of ``expected``) unless the state has moved on.

        Returns ``new`` when this call installed it, None when it lost to
        another transition (the cell then holds the winner).
        """

    @abstractmethod
    def add_failure(self, name: str, rec: Record, threshold: int, weight: int = 1) -> int:
        """Count one failure (``weight`` of them) in ``rec``'s epoch; return the consecutive count.

        A count at or past ``threshold`` is checked against the latest
        success first, so it is safe to open on.
        """

    @abstractmethod
    def note_success(self, name: str, rec: Record) -> None:
        """A call in ``rec``'s epoch succeeded: the next failure starts a new run."""

    @abstractmethod
    def acquire_probe(self, name: str, rec: Record, window: int, limit: int) -> int:
        """Take one of ``limit`` probe slots of this open epoch's window; 0 if none is free."""

    @abstractmethod
    def release_probe(self, name: str, rec: Record, window: int, slot: int) -> None:
        """Give a probe slot back (the probe was cancelled, or its outcome did not count)."""

    @abstractmethod
    def probe_succeeded(self, name: str, rec: Record) -> int:
        """Count one successful probe of the open decision ``rec``; how many have, in all."""

    @abstractmethod
    def probe_progress(self, name: str, rec: Record, window: int, limit: int) -> tuple[int, int]:
        """(probe slots taken in ``window``, probes of ``rec`` that succeeded): for the page."""

    @abstractmethod
    def tally(
        self, name: str, rec: Record, second: int, delta: Bucket, horizon: int, now: int
    ) -> Bucket:
        """Add this process's ``delta`` to ``second``'s bucket of the closed decision ``rec``;
        return the sum of the ``horizon`` seconds up to ``now``, every process's calls."""

    def sync(self, name: str, *, force: bool = False) -> None:  # noqa: B027 - optional hook
        """Refresh the cell from the shared state when due (or now, if forced)."""

    @abstractmethod
    def history(self, name: str, limit: int) -> list[Record]:
        """The latest decisions, oldest first, at most ``limit``."""

    def holds(self, name: str, record: Record) -> bool:
        """Whether ``record`` is in the store now, read afresh (an operator's read-back).

        A store in this process holds what it installed.
        """
        return self.cell(name).rec.uid == record.uid

    def withdraw(self, name: str, record: Record) -> None:  # noqa: B027 - optional hook
        """Forget ``record`` if it is this process's decision that never reached the store,
        so that it is not published later (an operator was told it did not land)."""

    def after_fork(self) -> None:  # noqa: B027 - optional hook
        """In a forked child (gunicorn, Celery prefork): fresh locks, a fresh look."""


# Stores whose locks a fork may have copied while held by another thread.
live_stores: weakref.WeakSet[BreakerStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(live_stores):
        store.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
