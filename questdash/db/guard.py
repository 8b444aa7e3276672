"""Every road to QuestDB passes here: the "questdb" breaker, retry and deadline.

Callers that do a whole operation (a dashboard read, the refresh task, the
health check) wrap it in `questdb_call(operation, fn)`: one breaker outcome,
retried as a whole on connection errors, so each attempt opens a fresh
cursor on a fresh connection. The engine itself guards each connect and
each statement; inside an operation that is already guarded, resilience's
guard just runs them (nothing is counted twice), and the engine holds them
to the call's time budget on the client side, whatever the server does:

- a connect gets ``min(CONNECT_TIMEOUT, budget left)``, to the millisecond
  (psycopg itself only counts whole seconds, and never fewer than two);
- a statement gets ``min(QUERY_TIMEOUT + STATEMENT_MARGIN, budget left)``
  (an executemany, the budget left);
- Django's connection health check (``SELECT 1``) gets a connect's budget.

Running out raises a ``QuestDBTimeout`` (a ``TimeoutError`` and Django's
``OperationalError``): QuestDB was reached and did not answer. With no
budget left before trying, nothing is sent and ``DeadlineExceeded`` says so
(``attempts=0``).
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from django.db.backends.postgresql.base import CursorDebugWrapper as PostgresCursorDebugWrapper
from django.db.backends.utils import CursorWrapper
from django.db.utils import OperationalError

from resilience.conf import get_config
from resilience.deadline import current_deadline, current_timeouts
from resilience.errors import DeadlineExceeded, OperationFailed, is_connection_error
from resilience.guard import guarded
from resilience.registry import get_breaker
from resilience.state import State

from .router import QUESTDB_ALIAS

T = TypeVar("T")

# Past the server's statement_timeout, so that on a live server its clean error
# (the connection survives) comes before our socket shutdown (it does not).
STATEMENT_MARGIN = 0.1
# Less budget than this left: the attempt could not succeed, so it is not made.
MIN_ATTEMPT_BUDGET = 0.01
PSYCOPG_MIN_CONNECT_TIMEOUT = 2  # seconds: psycopg raises anything lower to 2


def questdb_call(operation: str, fn: Callable[[], T], *, retry: bool = True) -> T:
    """Run fn as one guarded QuestDB operation, or as part of the one already running."""
    return guarded(operation, fn, breaker_name=QUESTDB_ALIAS, retry=retry)


class QuestDBTimeout(OperationalError, TimeoutError):
    """QuestDB was reached and did not answer in time.

    A ``TimeoutError``, so the breaker counts it and the retry leaves it alone
    (another attempt would wait as long again); and Django's
    ``OperationalError``, so code that catches database errors still does.
    """


class ConnectTimeout(QuestDBTimeout):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"QuestDB did not complete the connection within {seconds:.3g} s")


class StatementTimeout(QuestDBTimeout):
    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"QuestDB did not answer {what} within {seconds:.3g} s")


def _never_attempted(operation: str, seconds: float) -> DeadlineExceeded:
    deadline = current_deadline()
    return DeadlineExceeded(operation, deadline.budget if deadline is not None else seconds)


# --- statements: the watchdog -----------------------------------------------------


class Watchdog:
    """One thread that shuts the sockets of statements past their deadline.

    A paused (SIGSTOP) or blackholed QuestDB never answers; the server-side
    statement_timeout cannot fire and psycopg would wait for ever. Shutting
    the socket wakes psycopg at once with an OperationalError.

    The thread sleeps until the earliest deadline (a heap), so it fires within
    a few milliseconds of it. A statement only takes a lock and pushes onto the
    heap: the thread is woken only when a new deadline comes before the one it
    sleeps until, which with one statement timeout for all is when it was idle
    (at most once per statement timeout), never a thread switch per statement.
    Released statements stay in the heap until the thread passes them.
    """

    def __init__(self) -> None:
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
        due = time.monotonic() + seconds
        with self._lock:
            ticket = next(self._tickets)
            self._watched[ticket] = fileno
            heapq.heappush(self._heap, (due, ticket))
            if due < self._alarm:
                self._alarm = due
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="questdb-watchdog", daemon=True
                    )
                    self._thread.start()
                else:
                    self._wake.notify()
            return ticket

    def release(self, ticket: int) -> bool:
        """Whether the ticket's socket was shut. After this returns it never is: the
        statement is over, and its descriptor may be reused by another connection."""
        with self._lock:
            return self._watched.pop(ticket, None) is None

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                heap = self._heap
                while heap and (heap[0][0] <= now or heap[0][1] not in self._watched):
                    _, ticket = heapq.heappop(heap)
                    fileno = self._watched.pop(ticket, None)
                    if fileno is not None:
                        _shut(fileno)
                self._alarm = heap[0][0] if heap else math.inf
                self._wake.wait(None if not heap else self._alarm - now)


def _shut(fileno: int) -> None:
    # OSError: the connection is already closed, nothing left to wake.
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fileno)) as sock:
        sock.shutdown(socket.SHUT_RDWR)


watchdog = Watchdog()


def statement_seconds(many: bool = False) -> float:
    """A statement's client-side deadline: the server's timeout plus a margin, within the call.

    An executemany is one statement per row for the server, each with its own
    statement_timeout: only the call's budget bounds the batch.
    """
    deadline = current_deadline()
    if many and deadline is not None:
        return deadline.remaining()
    # min(min(query, left) + margin, left) is min(query + margin, left): one settings read.
    seconds = float(get_config()["QUERY_TIMEOUT"]) + STATEMENT_MARGIN
    return seconds if deadline is None else min(seconds, deadline.remaining())


# --- connects: a helper thread ----------------------------------------------------


def connect_within(connect: Callable[[], T], seconds: float, close: Callable[[T], Any]) -> T:
    """``connect()`` in a helper thread, waited for ``seconds`` exactly.

    psycopg (3.3) counts its connect_timeout in whole seconds and raises any
    value under 2 to 2, and libpq gives no socket before it returns, so the
    watchdog cannot cut a connect. Connects are rare (connections persist),
    so a thread each is cheap. When time runs out the helper is left to
    finish under psycopg's own timeout, and a connection that arrives late is
    closed by it.
    """
    future: Future[T] = Future()

    def run() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(connect())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            future.set_exception(exc)

    threading.Thread(target=run, name="questdb-connect", daemon=True).start()
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    if done.wait(seconds):
        return future.result()

    def late(arrived: Future[T]) -> None:
        if arrived.exception() is None:
            with contextlib.suppress(Exception):
                close(arrived.result())

    future.add_done_callback(late)  # runs at once if it arrived just now
    raise ConnectTimeout(seconds)


# --- the Django side ---------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _operation(sql: str) -> tuple[str, str]:
    """``("select", "questdb.select")``: a statement's verb and its guarded operation's name,
    worked out once per distinct statement (the dashboard sends the same few)."""
    verb = (sql.lstrip().split(None, 1) or ["query"])[0].lower()
    return verb, f"questdb.{verb}"


class GuardedCursorMixin:
    """Each statement: one guarded call, bounded by a client-side deadline."""

    def _execute_with_wrappers(self, sql, params, many, executor):
        verb, operation = _operation(sql)

        def run():
            seconds = statement_seconds(many)
            if seconds < MIN_ATTEMPT_BUDGET:
                raise _never_attempted(operation, seconds)
            db = self.db
            ticket = watchdog.watch(self.cursor.connection.fileno(), seconds)
            shut = False
            try:
                try:
                    return super(GuardedCursorMixin, self)._execute_with_wrappers(
                        sql, params, many, executor
                    )
                finally:
                    shut = watchdog.release(ticket)
                    if shut:  # even if the answer made it: the socket is gone
                        db.close_after_connection_error()
            except Exception as exc:
                if shut:
                    raise StatementTimeout(verb.upper(), seconds) from exc
                if is_connection_error(exc):
                    db.close_after_connection_error()
                raise

        # A statement cannot be retried on its own: its connection is gone.
        # Whole operations are retried by questdb_call around them.
        try:
            return questdb_call(operation, run, retry=False)
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
            seconds = current_timeouts().connect
            if seconds < MIN_ATTEMPT_BUDGET:
                raise _never_attempted("questdb.connect", seconds)
            # psycopg's own timeout only bounds the helper thread, after ours.
            params = {
                **conn_params,
                "connect_timeout": max(PSYCOPG_MIN_CONNECT_TIMEOUT, math.ceil(seconds) + 1),
            }
            return connect_within(lambda: parent(params), seconds, close=lambda c: c.close())

        return questdb_call("questdb.connect", connect)

    def make_cursor(self, cursor):
        return GuardedCursorWrapper(cursor, self)

    def make_debug_cursor(self, cursor):
        return GuardedCursorDebugWrapper(cursor, self)

    def is_usable(self):
        """CONN_HEALTH_CHECKS' ``SELECT 1``: only while the breaker is closed, never for long.

        Open or half-open, the connection is dropped instead, so the next
        statement reconnects through the guard (and a half-open probe is one).

        The check stands in for a reconnect, so it gets a connect's budget. A
        server that answers nothing in that time hangs: the connection is
        dropped, and a caller waiting within a deadline gets the timeout at
        once, counted, rather than a reconnect that would hang on the same
        server for a whole connect timeout more. At a request's edges (no
        deadline: Django's request_started and request_finished) nobody waits
        on a reconnect, and the check just says "unusable".
        """
        if self.connection is None or get_breaker(self.alias).state is not State.CLOSED:
            return False
        seconds = current_timeouts().connect
        if seconds < MIN_ATTEMPT_BUDGET:
            raise _never_attempted("questdb.ping", seconds)
        ticket = watchdog.watch(self.connection.fileno(), seconds)
        try:
            usable = super().is_usable()
        finally:
            shut = watchdog.release(ticket)
        if not shut:
            return usable
        self.close_after_connection_error()
        if current_deadline() is not None:
            raise StatementTimeout("the connection check (SELECT 1)", seconds)
        return False

    def close_after_connection_error(self):
        """A broken connection is dropped at once so the next attempt reconnects."""
        try:
            self.close()
        except Exception:  # noqa: BLE001 - closing a dead socket may fail; it is gone anyway
            self.connection = None
