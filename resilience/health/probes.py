"""Probes that may hang, run in threads of their own and waited for a bounded time."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

T = TypeVar("T")


class _Flight:
    __slots__ = ("future", "pid")

    def __init__(self, future: Future, pid: int) -> None:
        self.future = future
        self.pid = pid


_flights: dict[str, _Flight] = {}
_flights_lock = threading.Lock()


def _forget_flights_after_fork() -> None:
    """A forked child has none of its parent's probe threads, nor a lock one may hold."""
    global _flights_lock
    _flights.clear()
    _flights_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_flights_after_fork)


def bounded_call(key: str, fn: Callable[[], T], timeout: float) -> T:
    """``fn()`` in a daemon thread; wait at most ``timeout`` s (``TimeoutError`` after).

    A probe still running is joined, not repeated: at most one thread per
    ``key`` talks to a hanging dependency, however many requests ask. The
    probe that outlives its caller still finishes, and its outcome still
    reaches the breaker.
    """
    pid = os.getpid()
    with _flights_lock:
        flight = _flights.get(key)
        if flight is None or flight.pid != pid or flight.future.done():
            flight = _flights[key] = _Flight(_start(key, fn), pid)
    try:
        return flight.future.result(timeout=timeout)
    except FutureTimeout:
        raise TimeoutError(f"no answer within {timeout:g} s") from None


def settle_probes(timeout: float) -> bool:
    """Wait up to ``timeout`` s for the probes still running (shutdown, tests); True if none is."""
    deadline = time.monotonic() + timeout
    with _flights_lock:
        futures = [flight.future for flight in _flights.values()]
    for future in futures:
        try:
            future.exception(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            return False
    return True


def _start(key: str, fn: Callable[[], T]) -> Future:
    future: Future = Future()

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            future.set_exception(exc)

    threading.Thread(target=target, name=f"health-probe:{key}", daemon=True).start()
    return future
