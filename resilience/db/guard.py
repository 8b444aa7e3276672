"""Every road to a guarded database alias passes here: its breaker, retry and deadline.

The alias's breaker has the alias's name. Callers that do a whole operation
(a page's read, a task, a health check) wrap it in ``db_call(alias,
operation, fn)``: one breaker outcome, retried as a whole on connection
errors, so each attempt opens a fresh cursor on a fresh connection. The
backend itself guards each connect and each statement; inside an operation
that is already guarded, resilience's guard just runs them (nothing is
counted twice), and the backend holds them to the call's time budget on
the client side, whatever the server does:

- a connect gets ``min(CONNECT_TIMEOUT, budget left)``, to the millisecond
  (``connect.py``: psycopg itself only counts whole seconds, never fewer
  than two), and a connect given up on closes its socket at once;
- a statement gets ``min(QUERY_TIMEOUT + STATEMENT_MARGIN, budget left)``
  (an executemany, the budget left), after which the watchdog shuts its socket;
- Django's connection health check (``SELECT 1``) gets a connect's budget.

Running out raises a ``DatabaseTimeout`` (a ``TimeoutError`` and Django's
``OperationalError``): the server was reached and did not answer. With no
budget left before trying, nothing is sent and ``DeadlineExceeded`` says so
(``attempts=0``). ``CONNECT_TIMEOUT`` and ``QUERY_TIMEOUT`` are read per
breaker (``RESILIENCE["BREAKERS"][alias]`` may set its own).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

from django.db.backends.postgresql.base import CursorDebugWrapper as PostgresCursorDebugWrapper
from django.db.backends.utils import CursorWrapper
from django.db.utils import OperationalError

from ..conf import breaker_config
from ..deadline import MIN_ATTEMPT_BUDGET, current_deadline, current_timeouts
from ..errors import DeadlineExceeded, OperationFailed, is_connection_error
from ..guard import guarded
from ..registry import get_breaker
from ..state import State
from .connect import bounded_psycopg, connect_within
from .watchdog import watchdog

T = TypeVar("T")

# Past the server's statement_timeout, so that on a live server its clean error
# (the connection survives) comes before our socket shutdown (it does not).
STATEMENT_MARGIN = 0.1
PSYCOPG_MIN_CONNECT_TIMEOUT = 2  # seconds: psycopg raises anything lower to 2
QUERY_CANCELED = "57014"


def db_call(alias: str, operation: str, fn: Callable[[], T], *, retry: bool = True) -> T:
    """Run fn as one guarded operation on ``alias``, or as part of the one already running."""
    return guarded(operation, fn, breaker_name=alias, retry=retry)


class DatabaseTimeout(OperationalError, TimeoutError):
    """The database was reached and did not answer in time.

    A ``TimeoutError``, so the breaker counts it and the retry leaves it alone
    (another attempt would wait as long again); and Django's
    ``OperationalError``, so code that catches database errors still does.
    """


class ConnectTimeout(DatabaseTimeout):
    def __init__(self, seconds: float, server: str = "The database") -> None:
        super().__init__(f"{server} did not complete the connection within {seconds:.3g} s")


class StatementTimeout(DatabaseTimeout):
    def __init__(self, what: str, seconds: float, server: str = "The database") -> None:
        super().__init__(f"{server} did not answer {what} within {seconds:.3g} s")


def _never_attempted(operation: str, seconds: float) -> DeadlineExceeded:
    deadline = current_deadline()
    return DeadlineExceeded(operation, deadline.budget if deadline is not None else seconds)


def _cancelled_by_the_server(exc: BaseException) -> bool:
    """The server's own statement_timeout fired (SQLSTATE 57014): it answered, and the
    connection is still good, unlike one the watchdog shut."""
    return getattr(exc.__cause__, "sqlstate", None) == QUERY_CANCELED


def statement_seconds(alias: str, many: bool = False) -> float:
    """A statement's client-side deadline: the server's timeout plus a margin, within the call.

    An executemany is one statement per row for the server, each with its own
    statement_timeout: only the call's budget bounds the batch.
    """
    deadline = current_deadline()
    if many and deadline is not None:
        return deadline.remaining()
    # min(min(query, left) + margin, left) is min(query + margin, left): one settings read.
    seconds = float(breaker_config(alias)["QUERY_TIMEOUT"]) + STATEMENT_MARGIN
    return seconds if deadline is None else min(seconds, deadline.remaining())


def connect_seconds(alias: str) -> float:
    """A connect's budget: ``CONNECT_TIMEOUT`` of the alias's breaker, within the call."""
    return current_timeouts(connect=breaker_config(alias)["CONNECT_TIMEOUT"]).connect


@functools.lru_cache(maxsize=512)
def _operation(alias: str, sql: str) -> tuple[str, str]:
    """``("select", "replica.select")``: a statement's verb and its guarded operation's name,
    worked out once per distinct statement (a dashboard sends the same few)."""
    verb = (sql.lstrip().split(None, 1) or ["query"])[0].lower()
    return verb, f"{alias}.{verb}"


class GuardedCursorMixin:
    """Each statement: one guarded call, bounded by a client-side deadline."""

    def _execute_with_wrappers(self, sql, params, many, executor):
        db = self.db
        verb, operation = _operation(db.alias, sql)

        def run():
            seconds = statement_seconds(db.alias, many)
            if seconds < MIN_ATTEMPT_BUDGET:
                raise _never_attempted(operation, seconds)
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
                    raise StatementTimeout(verb.upper(), seconds, db.display_name) from exc
                if is_connection_error(exc) and not _cancelled_by_the_server(exc):
                    db.close_after_connection_error()
                raise

        # A statement cannot be retried on its own: its connection is gone.
        # Whole operations are retried by db_call around them.
        try:
            return db_call(db.alias, operation, run, retry=False)
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
    """The guard around a psycopg-based Django database wrapper: connects, statements,
    health checks. Mix it in before the wrapper class."""

    # psycopg, connecting within the budget (connect.py); the rest is psycopg's own.
    Database: Any = bounded_psycopg

    def get_new_connection(self, conn_params):
        parent = super().get_new_connection
        operation = f"{self.alias}.connect"

        def connect():
            seconds = connect_seconds(self.alias)
            if seconds < MIN_ATTEMPT_BUDGET:
                raise _never_attempted(operation, seconds)
            # psycopg's own timeout is only a backstop, after ours.
            params = {
                **conn_params,
                "connect_timeout": max(PSYCOPG_MIN_CONNECT_TIMEOUT, math.ceil(seconds) + 1),
            }
            return connect_within(lambda: parent(params), seconds, self._connect_timeout)

        return db_call(self.alias, operation, connect)

    def _connect_timeout(self, seconds: float) -> ConnectTimeout:
        return ConnectTimeout(seconds, self.display_name)

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
        if current_deadline() is None:  # a request's edge: nobody waits on a reconnect
            return self._ping(waited_on=False)
        # Someone waits: a hang is a timeout, counted (nested in an operation: by it).
        return db_call(self.alias, f"{self.alias}.ping", self._ping, retry=False)

    def _ping(self, *, waited_on: bool = True) -> bool:
        seconds = connect_seconds(self.alias)
        if seconds < MIN_ATTEMPT_BUDGET:
            raise _never_attempted(f"{self.alias}.ping", seconds)
        ticket = watchdog.watch(self.connection.fileno(), seconds)
        try:
            usable = super().is_usable()
        finally:
            shut = watchdog.release(ticket)
        if not shut:
            return usable
        self.close_after_connection_error()
        if waited_on:
            raise StatementTimeout("the connection check (SELECT 1)", seconds, self.display_name)
        return False

    def close_after_connection_error(self):
        """A broken connection is dropped at once so the next attempt reconnects."""
        try:
            self.close()
        except Exception:  # noqa: BLE001 - closing a dead socket may fail; it is gone anyway
            self.connection = None
