"""QuestDB over the PostgreSQL wire protocol, on Django's postgresql backend.

Django's stock engine refuses QuestDB twice: the server says it is version
11.3 (Django 5.2 wants 14+), and its time zone is GMT, so Django sends
`set_config('TimeZone', ...)`, which QuestDB does not have. This backend
skips both, stays in autocommit, and never opens server-side cursors or
savepoints, none of which QuestDB supports.

It is also where the circuit breaker sits: every new connection and every
statement passes the "questdb" guard, so no code reaches QuestDB around it,
and an open breaker means no network traffic at all.
"""

import math

from django.db.backends.postgresql.base import CursorDebugWrapper as PostgresCursorDebugWrapper
from django.db.backends.postgresql.base import DatabaseWrapper as PostgresDatabaseWrapper
from django.db.backends.utils import CursorWrapper

from resilience.breaker import get_breaker
from resilience.deadline import current_timeouts
from resilience.errors import DeadlineExceeded, OperationFailed, is_connection_error

from ..guard import questdb_call, socket_deadline
from .features import DatabaseFeatures
from .introspection import DatabaseIntrospection
from .operations import DatabaseOperations

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


class DatabaseWrapper(PostgresDatabaseWrapper):
    vendor = "questdb"
    display_name = "QuestDB"
    features_class = DatabaseFeatures
    introspection_class = DatabaseIntrospection
    ops_class = DatabaseOperations

    def get_database_version(self):
        return self.pg_version and divmod(self.pg_version, 10000)

    def check_database_version_supported(self):
        """QuestDB's reported version says nothing about what it supports."""

    def _configure_timezone(self, connection):
        # QuestDB stores and returns UTC; it has no set_config to change that.
        return False

    def _configure_role(self, connection):
        return False

    def chunked_cursor(self):
        # QuestDB has no server-side (named) cursors: iterate a plain one.
        return self.cursor()

    def _savepoint_allowed(self):
        return False

    # --- the guard ------------------------------------------------------------

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
