"""The QuestDB dialect without the guard: Django's postgresql connects, cursors and checks."""

from django.db.backends.postgresql.base import DatabaseWrapper as PostgresDatabaseWrapper

from questdash.db.backend.base import DatabaseWrapper as QuestDBDatabaseWrapper


class DatabaseWrapper(QuestDBDatabaseWrapper):
    get_new_connection = PostgresDatabaseWrapper.get_new_connection
    make_cursor = PostgresDatabaseWrapper.make_cursor
    make_debug_cursor = PostgresDatabaseWrapper.make_debug_cursor
    is_usable = PostgresDatabaseWrapper.is_usable
