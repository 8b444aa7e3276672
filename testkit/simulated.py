"""A simulated fleet for the model test: processes with their own clocks on one faulty cache.

``Memory`` plays the Redis server: keys with expiry on the true clock, and
the faults of DESIGN.md's catalogue that a fake can show (flush, restart
empty, hang, raise, a lost write, a non-atomic increment, one glitch).
``Client`` is one process's connection to it; it speaks the part of
Django's cache API that the store and the fallback use. ``Process`` is one
interpreter: a clock ``offset`` seconds off the true one, its own store,
breaker and fallback, all on that clock.

Hangs cost time: a hung operation moves the true clock by the socket
timeout before it raises, so a call's cost in fake seconds tells how many
waits it paid. In a burst of real threads, a hang is a short real sleep
instead, so that queueing behind a lock shows in wall time.
"""

from __future__ import annotations

import copy
import datetime as _datetime
import inspect
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

from resilience.clock import FakeClock

SOCKET_TIMEOUT = 1.0  # fake seconds a hung operation costs
BURST_HANG = 0.02  # real seconds a hung operation costs inside a thread burst
MISSING = object()


class CacheDown(ConnectionError):
    """What redis-py raises when the server refuses (the message holds a URL with a password)."""


class CacheTimeout(TimeoutError):
    """What redis-py raises when the server does not answer within socket_timeout."""


@dataclass
class Memory:
    """The shared cache server."""

    clock: FakeClock
    data: dict[str, tuple[Any, float | None]] = field(default_factory=dict)
    mode: str | None = None  # None, "hang" or "raise"
    glitch: bool = False  # the next operation hangs, once
    lose_next_write: bool = False
    atomic_incr: bool = True
    batch: dict[str, Any] | None = None  # a snapshot: increments read it (non-atomic incr)
    burst: bool = False  # hangs are real sleeps of burst_hang seconds (real threads are calling)
    burst_hang: float = BURST_HANG
    hung: int = 0
    # When a deferred fault (a glitch, a lost write) really happened: later than the
    # rule that armed it, perhaps after decisions the invariants would call healthy.
    fired_at: float = -math.inf
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def healthy(self) -> bool:
        return self.mode is None and not self.glitch and not self.lose_next_write

    def flush(self) -> None:
        with self.lock:
            self.data.clear()

    def live(self, key: str) -> Any:
        item = self.data.get(key)
        if item is None:
            return MISSING
        value, expires = item
        if expires is not None and expires <= self.clock.time():
            del self.data[key]
            return MISSING
        return value

    def peek(self, key: str) -> Any:
        with self.lock:
            value = self.live(key)
        return None if value is MISSING else copy.deepcopy(value)


class Client:
    """One process's handle on ``Memory``: Django's cache API, with the server's faults."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory

    def reference_time(self) -> float:
        """The server's clock (Redis TIME)."""
        self._fault()
        return self.memory.clock.time()

    # --- faults ---------------------------------------------------------------------

    def _fault(self) -> None:
        memory = self.memory
        if memory.mode == "raise":
            raise CacheDown("Error 111 connecting to redis://:s3cret@127.0.0.1:6399. Refused.")
        if memory.mode == "hang" or memory.glitch:
            if memory.glitch:
                memory.fired_at = memory.clock.time()
            memory.glitch = False
            memory.hung += 1
            if memory.burst:
                time.sleep(memory.burst_hang)
            else:
                memory.clock.advance(SOCKET_TIMEOUT)
            raise CacheTimeout("Timeout reading from 127.0.0.1:6399")

    def _expiry(self, timeout: Any) -> float | None:
        if timeout is DEFAULT_TIMEOUT:
            timeout = 300
        return None if timeout is None else self.memory.clock.time() + float(timeout)

    def _write(self) -> bool:
        """False when this write is lost (the server acknowledged and dropped it)."""
        if self.memory.lose_next_write:
            self.memory.lose_next_write = False
            self.memory.fired_at = self.memory.clock.time()
            return False
        return True

    # --- the cache API --------------------------------------------------------------

    def get(self, key: str, default: Any = None, version: Any = None) -> Any:
        self._fault()
        value = self.memory.peek(key)
        return default if value is None else value

    def get_many(self, keys: Any, version: Any = None) -> dict[str, Any]:
        self._fault()
        found = {}
        with self.memory.lock:
            for key in keys:
                value = self.memory.live(key)
                if value is not MISSING:
                    found[key] = copy.deepcopy(value)
        return found

    def set(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> None:
        self._fault()
        with self.memory.lock:
            if self._write():
                self.memory.data[key] = (copy.deepcopy(value), self._expiry(timeout))

    def add(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> bool:
        self._fault()
        with self.memory.lock:
            if self.memory.live(key) is not MISSING:
                return False
            if self._write():
                self.memory.data[key] = (copy.deepcopy(value), self._expiry(timeout))
            return True

    def delete(self, key: str, version: Any = None) -> bool:
        self._fault()
        with self.memory.lock:
            if not self._write():
                return True
            return self.memory.data.pop(key, None) is not None

    def touch(self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> bool:
        self._fault()
        with self.memory.lock:
            value = self.memory.live(key)
            if value is MISSING:
                return False
            if self._write():
                self.memory.data[key] = (value, self._expiry(timeout))
            return True

    def incr(self, key: str, delta: int = 1, version: Any = None) -> int:
        self._fault()
        with self.memory.lock:
            memory = self.memory
            value = memory.live(key)
            if value is MISSING:
                raise ValueError(f"Key '{key}' not found")
            if not memory.atomic_incr and memory.batch is not None:
                value = memory.batch.get(key, value)  # read before the others wrote
            item = memory.data[key]
            if self._write():
                memory.data[key] = (value + delta, item[1])
            return value + delta

    def clear(self) -> None:
        self.memory.flush()

    @property
    def atomic_incr(self) -> bool:
        return self.memory.atomic_incr


class FleetCache(BaseCache):
    """A Django cache backend on the fleet's memory, acting as the current process's client.

    For code that looks its cache up by alias (``caches["fleet"]``); the
    harness says which process is acting.
    """

    current: Process | None = None

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)

    def __getattribute__(self, name: str) -> Any:
        if name in {"get", "get_many", "set", "add", "delete", "touch", "incr", "clear",
                    "reference_time", "atomic_incr"}:  # fmt: skip
            process = FleetCache.current
            assert process is not None, "no simulated process is acting"
            return getattr(process.client, name)
        return super().__getattribute__(name)


class SkewedClock:
    """A process's clock: the true one plus a fixed offset; sleeping moves true time."""

    def __init__(self, true: FakeClock, offset: float) -> None:
        self.true = true
        self.offset = offset

    def time(self) -> float:
        return self.true.time() + self.offset

    def monotonic(self) -> float:
        return self.true.monotonic() + 1000.0  # another origin than the true clock's

    def sleep(self, seconds: float) -> None:
        self.true.advance(max(0.0, seconds))

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


class _DatetimeShim:
    """``datetime`` as the fallback module sees it: ``now()`` reads the acting process's clock."""

    class datetime(_datetime.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            process = FleetCache.current
            assert process is not None
            return _datetime.datetime.fromtimestamp(process.clock.time(), tz or _datetime.UTC)

    UTC = _datetime.UTC
    timedelta = _datetime.timedelta
    timezone = _datetime.timezone


_pids = itertools.count(100)


def accepts(fn: Callable[..., Any], name: str) -> bool:
    return name in inspect.signature(fn).parameters


class Process:
    """One interpreter of the fleet: a clock, a store, a breaker and a fallback on one client."""

    def __init__(self, fleet: Any, offset: float) -> None:
        from resilience.breaker import CircuitBreaker
        from resilience.stores import CacheStore

        self.fleet = fleet
        self.pid = next(_pids)
        self.offset = offset
        self.clock = SkewedClock(fleet.true, offset)
        self.client = Client(fleet.memory)
        options: dict[str, Any] = {
            "cache": self.client,
            "clock": self.clock,
            "sync_interval": fleet.SYNC_INTERVAL,
            "outage_retry_interval": fleet.RETRY_INTERVAL,
        }
        if accepts(CacheStore.__init__, "recover_inline"):
            options["recover_inline"] = True  # no background thread in a simulation
        self.store = CacheStore(**options)
        self.breaker = CircuitBreaker(
            fleet.NAME,
            failure_threshold=fleet.THRESHOLD,
            recovery_timeout=fleet.RECOVERY,
            half_open_max_calls=fleet.MAX_PROBES,
            backoff_multiplier=2.0,
            max_recovery_timeout=fleet.MAX_RECOVERY,
            store=self.store,
            clock=self.clock,
        )
        self.fallback = fleet.make_fallback(self)
        self.alive = True

    def __repr__(self) -> str:
        return f"<process {self.pid} offset {self.offset:+g}>"

    def acting(self) -> Process:
        FleetCache.current = self
        return self
