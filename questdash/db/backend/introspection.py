from django.db.backends.base.introspection import BaseDatabaseIntrospection, TableInfo


class DatabaseIntrospection(BaseDatabaseIntrospection):
    """Table names only: QuestDB has no pg_catalog constraints or sequences to read."""

    def get_table_list(self, cursor):
        cursor.execute("SELECT table_name FROM tables()")
        return [TableInfo(row[0], "t") for row in cursor.fetchall()]

    def get_sequences(self, cursor, table_name, table_fields=()):
        return []

    def get_constraints(self, cursor, table_name):
        return {}
