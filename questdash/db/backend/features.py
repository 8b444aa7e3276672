"""What QuestDB's PostgreSQL wire endpoint supports, flag by flag.

Each flag that differs from Django's postgresql backend says why, and links
the QuestDB page that shows it where there is one. The ORM behaviour these
flags decide is checked against a real QuestDB by tests/test_orm_matrix.py.
"""

from django.db.backends.postgresql.features import (
    DatabaseFeatures as PostgresDatabaseFeatures,
)


class DatabaseFeatures(PostgresDatabaseFeatures):
    # QuestDB reports server_version 11.3, which says nothing about its SQL:
    # no version gate (Django 5.2 then skips check_database_version_supported).
    minimum_database_version = None

    # BEGIN and COMMIT are accepted on the wire, but WAL tables apply writes
    # asynchronously and nothing rolls back; there is no SAVEPOINT (Django 5.2
    # then never asks for one) and no transactional DDL.
    # https://questdb.com/docs/query/pgwire/overview/ (Compatibility)
    supports_transactions = False
    atomic_transactions = False
    uses_savepoints = False
    can_release_savepoints = False
    can_rollback_ddl = False

    # No row locks: no SELECT ... FOR UPDATE in any form.
    has_select_for_update = False
    has_select_for_update_nowait = False
    has_select_for_update_of = False
    has_select_for_update_skip_locked = False
    has_select_for_no_key_update = False
    # No foreign keys, unique or deferrable constraints, comments or tablespaces:
    # https://questdb.com/docs/query/sql/create-table/
    supports_foreign_keys = False
    can_defer_constraint_checks = False
    supports_deferrable_unique_constraints = False
    supports_comments = False
    supports_tablespaces = False
    supports_covering_indexes = False
    supports_stored_generated_columns = False
    can_rename_index = False
    can_clone_databases = False
    # Materialized views exist in QuestDB 9 but are not introspected here.
    can_introspect_materialized_views = False
    # No COLLATE clause: string comparison is by code point.
    supports_collation_on_charfield = False
    supports_collation_on_textfield = False

    # INSERT has no RETURNING and no ON CONFLICT.
    # https://questdb.com/docs/query/sql/insert/
    can_return_columns_from_insert = False
    can_return_rows_from_bulk_insert = False
    supports_update_conflicts = False
    supports_update_conflicts_with_target = False

    # No JSON column type (json_extract() reads JSON held in a VARCHAR).
    # https://questdb.com/docs/query/datatypes/overview/
    supports_json_field = False
    has_native_json_field = False
    has_json_operators = False
    # UUID is a native type.
    has_native_uuid_field = True
    # No INTERVAL column or bind type ("unsupported bind variable type
    # INTERVAL"): timestamp differences come back as microseconds, which
    # Django turns into timedeltas.
    has_native_duration_field = False
    supports_temporal_subtraction = True

    # No DISTINCT ON. https://questdb.com/docs/query/sql/distinct/
    can_distinct_on_fields = False
    # No FILTER (WHERE ...) on aggregates: Django writes CASE WHEN instead.
    supports_aggregate_filter_clause = False
    # No row values: (a, b) = (x, y) fails, so composite primary key lookups
    # are spelled out column by column.
    supports_tuple_lookups = False
    # No NULLS FIRST / NULLS LAST, and the default order of NULL depends on the
    # type (NULL strings and integers sort first, NULL doubles, being NaN, sort
    # last). With both flags False Django always spells an explicit
    # nulls_first/nulls_last as "x IS NULL, x", which QuestDB orders correctly.
    # https://questdb.com/docs/query/sql/order-by/
    supports_order_by_nulls_modifier = False
    order_by_nulls_first = False
    # GROUP BY must name every selected column; there is no primary key to
    # stand in for the others.
    allows_group_by_selected_pks = False
    # No named (server-side) cursors: iterator() reads the whole result from
    # one plain cursor (see DatabaseWrapper.chunked_cursor).
    can_use_chunked_reads = False
    # EXPLAIN prints a text plan only.
    supported_explain_formats = {"TEXT"}
