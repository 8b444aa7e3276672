"""One thread that shuts the sockets of database calls past their deadline.

A paused (SIGSTOP) or blackholed server never answers: its own
statement_timeout cannot fire, and psycopg would wait for ever. Shutting the
socket wakes psycopg at once with an error, whatever it was waiting for (a
connect, a statement, Django's connection check).

The thread sleeps until the earliest deadline (a heap), so it fires within
a few milliseconds of it. A call only takes a lock and pushes onto the heap:
the thread is woken only when a new deadline comes before the one it sleeps
until, which with one statement timeout for all is when it was idle (at most
once per statement timeout), never a thread switch per statement. Released
calls stay in the heap until the thread passes them.

The clock is injectable: with a ``FakeClock`` and ``thread=False`` a test
moves time and calls ``fire_due()`` itself.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import os
import socket
import threading

from ..clock import SYSTEM_CLOCK, Clock


class Watchdog:
    """Shuts a watched socket at its deadline unless the call releases it first."""

    def __init__(self, clock: Clock | None = None, *, thread: bool = True) -> None:
        self.clock = clock or SYSTEM_CLOCK
        self._threaded = thread
        self._tickets = itertools.count()
        self._start_afresh()
        # A fork copies neither the thread nor a lock it may hold at that instant.
        os.register_at_fork(after_in_child=self._start_afresh)

    def _start_afresh(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._watched: dict[int, int] = {}  # ticket -> fileno, until released or fired
        self._heap: list[tuple[float, int]] = []  # (monotonic due, ticket)
        self._alarm = math.inf  # when the thread looks next
        self._thread: threading.Thread | None = None

    def watch(self, fileno: int, seconds: float) -> int:
        """Shut ``fileno`` in ``seconds`` unless the returned ticket is released first."""
        due = self.clock.monotonic() + seconds
        with self._lock:
            ticket = next(self._tickets)
            self._watched[ticket] = fileno
            heapq.heappush(self._heap, (due, ticket))
            if due < self._alarm:
                self._alarm = due
                if self._threaded:
                    self._wake_thread()
            return ticket

    def _wake_thread(self) -> None:
        """The thread looks again now (started, the first time)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="resilience-watchdog", daemon=True
            )
            self._thread.start()
        else:
            self._wake.notify()

    def release(self, ticket: int) -> bool:
        """Whether the ticket's socket was shut. After this returns it never is: the
        call is over, and its descriptor may be reused by another connection."""
        with self._lock:
            return self._watched.pop(ticket, None) is None

    def fire_due(self) -> float:
        """Shut every socket whose deadline has passed; when the next one is due."""
        with self._lock:
            return self._fire_due()

    def _fire_due(self) -> float:
        now = self.clock.monotonic()
        heap = self._heap
        while heap and (heap[0][0] <= now or heap[0][1] not in self._watched):
            _, ticket = heapq.heappop(heap)
            fileno = self._watched.pop(ticket, None)
            if fileno is not None:
                shut(fileno)
        self._alarm = heap[0][0] if heap else math.inf
        return self._alarm

    def _run(self) -> None:
        with self._lock:
            while True:
                alarm = self._fire_due()
                self._wake.wait(None if alarm == math.inf else alarm - self.clock.monotonic())


def shut(fileno: int) -> None:
    """Shut the socket behind ``fileno`` both ways: whoever waits on it wakes at once."""
    # OSError: the connection is already closed, nothing left to wake.
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fileno)) as sock:
        sock.shutdown(socket.SHUT_RDWR)


watchdog = Watchdog()
