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
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from django.db.backends.postgresql.base import CursorDebugWrapper as PostgresCursorDebugWrapper
from django.db.backends.utils import CursorWrapper

from resilience.breaker import get_breaker
from resilience.deadline import current_timeouts
from resilience.errors import DeadlineExceeded, OperationFailed, is_connection_error
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


PSYCOPG_MIN_CONNECT_TIMEOUT = 2  # seconds: psycopg raises anything lower to 2


class GuardedCursorMixin:
    """Each statement: one guarded call, bounded by a client-side deadline."""

    def _execute_with_wrappers(self, sql, params, many, executor):
        verb = (sql.lstrip().split(None, 1) or ["query"])[0].lower()

        def run():
            try:
                # Past the server's statement_timeout, and within the call's budget.
                seconds = current_timeouts().query + 0.5
                with socket_deadline(self.db.connection.fileno(), seconds):
                    return super(GuardedCursorMixin, self)._execute_with_wrappers(
                        sql, params, many, executor
                    )
            except Exception as exc:
                if is_connection_error(exc):
                    self.db.close_after_connection_error()
                raise

        # A statement cannot be retried on its own: its connection is gone.
        # Whole operations are retried by questdb_call around them.
        try:
            return questdb_call(f"questdb.{verb}", run, retry=False)
        except OperationFailed as exc:
            # A bad query is the caller's bug, not an outage: give back Django's
            # own error (ProgrammingError, DataError...), as any backend would.
            if type(exc) is OperationFailed and not exc.connection_error and exc.cause:
                raise exc.cause from None
            raise


class GuardedCursorWrapper(GuardedCursorMixin, CursorWrapper):
    pass


class GuardedCursorDebugWrapper(GuardedCursorMixin, PostgresCursorDebugWrapper):
    pass


class GuardedDatabaseMixin:
    """The guard around a Django database wrapper: connects, statements, health checks."""

    def get_new_connection(self, conn_params):
        parent = super().get_new_connection

        def connect():
            # psycopg will not time out in under 2 s: with less budget left, give up now.
            budget = current_timeouts().connect
            if budget < PSYCOPG_MIN_CONNECT_TIMEOUT:
                raise DeadlineExceeded("questdb.connect", budget)
            return parent({**conn_params, "connect_timeout": math.ceil(budget)})

        return questdb_call("questdb.connect", connect)

    def make_cursor(self, cursor):
        return GuardedCursorWrapper(cursor, self)

    def make_debug_cursor(self, cursor):
        return GuardedCursorDebugWrapper(cursor, self)

    def is_usable(self):
        """CONN_HEALTH_CHECKS' probe: only while the breaker is closed, never unbounded.

        Open or half-open, the connection is dropped instead, so the next
        statement reconnects through the guard (and a half-open probe is one).
        """
        if self.connection is None or get_breaker(self.alias).public_state != "closed":
            return False
        with socket_deadline(self.connection.fileno(), current_timeouts().connect):
            return super().is_usable()

    def close_after_connection_error(self):
        """A broken connection is dropped at once so the next attempt reconnects."""
        try:
            self.close()
        except Exception:  # noqa: BLE001 - closing a dead socket may fail; it is gone anyway
            self.connection = None
