"""QuestDB over the PostgreSQL wire protocol, on Django's postgresql backend.

Django's stock engine refuses QuestDB twice: the server says it is version
11.3 (Django 5.2 wants 14+), and its time zone is GMT, so Django sends
`set_config('TimeZone', ...)`, which QuestDB does not have. This backend
skips both, stays in autocommit, and never opens server-side cursors or
savepoints, none of which QuestDB supports.

The circuit breaker is mixed in from ``questdash.db.guard``: every new
connection and every statement passes the "questdb" guard, so no code
reaches QuestDB around it. This file is the QuestDB dialect alone.
"""

from django.db.backends.postgresql.base import DatabaseWrapper as PostgresDatabaseWrapper

from ..guard import GuardedDatabaseMixin
from .features import DatabaseFeatures
from .introspection import DatabaseIntrospection
from .operations import DatabaseOperations


class DatabaseWrapper(GuardedDatabaseMixin, PostgresDatabaseWrapper):
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
