"""Django's PostgreSQL engine, guarded: ``"ENGINE": "resilience.db.backends.postgresql"``.

Every connect and statement of the alias passes its breaker (named after the
alias), within the call's deadline (``resilience.db.guard``), and the server
is asked to give up on a statement after ``QUERY_TIMEOUT`` itself
(``statement_timeout``, unless ``OPTIONS["options"]`` sets one): on a live
server a slow statement ends cleanly and the connection survives; on a
paused or cut-off one the watchdog shuts the socket 0.1 s later.

psycopg 3 only. Django's connection pool (``OPTIONS["pool"]``) is refused:
its workers would connect around the breaker. Keep connections with
``CONN_MAX_AGE`` and ``CONN_HEALTH_CHECKS`` instead.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql.base import DatabaseWrapper as PostgresDatabaseWrapper

from ....conf import breaker_config
from ...guard import GuardedDatabaseMixin


class DatabaseWrapper(GuardedDatabaseMixin, PostgresDatabaseWrapper):
    def get_connection_params(self):
        if self.settings_dict["OPTIONS"].get("pool"):
            raise ImproperlyConfigured(
                f"DATABASES[{self.alias!r}] uses resilience.db.backends.postgresql with "
                "OPTIONS['pool']: the pool's workers would connect around the breaker. Remove "
                "'pool' and keep connections with CONN_MAX_AGE and CONN_HEALTH_CHECKS."
            )
        params = super().get_connection_params()
        options = params.get("options", "")
        if "statement_timeout" not in options:
            ms = round(float(breaker_config(self.alias)["QUERY_TIMEOUT"]) * 1000)
            params["options"] = f"{options} -c statement_timeout={ms}".strip()
        return params
