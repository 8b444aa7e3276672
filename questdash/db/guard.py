"""Every road to QuestDB passes here: the "questdb" breaker, retry and deadline.

Callers that do a whole operation (a dashboard read, the refresh task, the
health check) wrap it in `questdb_call(operation, fn)`: one breaker outcome,
retried as a whole on connection errors, so each attempt opens a fresh
cursor on a fresh connection. The engine itself guards each connect and
each statement; inside an operation that is already guarded, resilience's
guard just runs them (nothing is counted twice), and the engine adds the
client-side socket deadline.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from resilience.guard import guarded

from .router import QUESTDB_ALIAS

T = TypeVar("T")


def questdb_call(operation: str, fn: Callable[[], T], *, retry: bool = True) -> T:
    """Run fn as one guarded QuestDB operation, or as part of the one already running."""
    return guarded(operation, fn, breaker_name=QUESTDB_ALIAS, retry=retry)


class Watchdog:
    """One thread that shuts the sockets of statements past their deadline.

    A paused (SIGSTOP) QuestDB still accepts TCP and never answers; the
    server-side statement_timeout cannot fire and psycopg waits for ever.
    Shutting the socket wakes psycopg with an OperationalError. One shared
    thread that looks four times a second costs a lock per statement (a
    quarter second of slack on a deadline of seconds); a Timer per statement,
    or waking the thread for each, would cost a thread switch every time.
    """

    TICK = 0.25

    def __init__(self) -> None:
        self._tickets = itertools.count()
        self._start_afresh()
        # A fork copies neither the thread nor a lock it may hold at that instant.
        os.register_at_fork(after_in_child=self._start_afresh)

    def _start_afresh(self) -> None:
        self._due: dict[int, tuple[float, int]] = {}  # ticket -> (monotonic due, fileno)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, fileno: int, seconds: float) -> int:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="questdb-watchdog")
                self._thread.daemon = True
                self._thread.start()
            ticket = next(self._tickets)
            self._due[ticket] = (time.monotonic() + seconds, fileno)
            return ticket

    def release(self, ticket: int) -> None:
        """After this returns, the ticket's socket is never shut: its fd may be reused."""
        with self._lock:
            self._due.pop(ticket, None)

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK)
            now = time.monotonic()
            with self._lock:
                for ticket, (due, fileno) in list(self._due.items()):
                    if due <= now:
                        del self._due[ticket]
                        _shut(fileno)


def _shut(fileno: int) -> None:
    # OSError: the connection is already closed, nothing left to wake.
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fileno)) as sock:
        sock.shutdown(socket.SHUT_RDWR)


_watchdog = Watchdog()


@contextlib.contextmanager
def socket_deadline(fileno: int, seconds: float) -> Iterator[None]:
    """Shut the connection's socket if the server has not answered in time."""
    ticket = _watchdog.watch(fileno, seconds)
    try:
        yield
    finally:
        _watchdog.release(ticket)
