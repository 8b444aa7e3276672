from django.db.backends.postgresql.features import (
    DatabaseFeatures as PostgresDatabaseFeatures,
)


class DatabaseFeatures(PostgresDatabaseFeatures):
    """What QuestDB's PG-wire endpoint really supports (reads first, no DDL via ORM)."""

    # QuestDB reports server_version 11.3; the version gate is meaningless for it.
    minimum_database_version = None
    supports_transactions = False
    uses_savepoints = False
    can_release_savepoints = False
    can_rollback_ddl = False
    atomic_transactions = False
    has_select_for_update = False
    has_select_for_update_nowait = False
    has_select_for_update_of = False
    has_select_for_update_skip_locked = False
    has_select_for_no_key_update = False
    can_distinct_on_fields = False  # no DISTINCT ON
    can_defer_constraint_checks = False
    supports_foreign_keys = False
    supports_comments = False
    supports_tablespaces = False
    can_return_columns_from_insert = False
    can_return_rows_from_bulk_insert = False
    can_introspect_materialized_views = False
    can_clone_databases = False
    supports_update_conflicts = False
    supports_update_conflicts_with_target = False
    supports_aggregate_filter_clause = False
    supports_deferrable_unique_constraints = False
    has_json_operators = False
    has_native_json_field = False
    has_native_uuid_field = True
    supports_stored_generated_columns = False
    supports_covering_indexes = False
    can_rename_index = False
    supported_explain_formats = {"TEXT"}
