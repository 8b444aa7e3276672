"""SQL compilers for QuestDB: what its grammar lacks, translated or refused by name.

- HAVING does not exist: the grouped query becomes a subquery filtered from
  outside (Django's own QUALIFY emulation does exactly that).
- Correlated subqueries (OuterRef) do not exist: refused with
  NotSupportedError before QuestDB answers with a parse error.
- DELETE does not exist: refused likewise.
- LATEST ON and SAMPLE BY, which the ORM has no words for, are written
  after WHERE for the QuerySet methods in questdash.db.backend.queryset;
  filters chained after latest_on() filter its rows from an outer query.
"""

from __future__ import annotations

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db import NotSupportedError
from django.db.models.sql import compiler
from django.db.models.sql.compiler import (  # noqa: F401 - the backend's compiler module
    SQLAggregateCompiler,
    SQLInsertCompiler,
    SQLUpdateCompiler,
)
from django.db.models.sql.where import AND, WhereNode

from .queryset import time_series_clause


class SQLCompiler(compiler.SQLCompiler):
    where = None  # until pre_sql_setup() splits the query's WHERE (compile() asks before)

    def as_sql(self, with_limits=True, with_col_aliases=False):
        if self.query.subquery and self.query.get_external_cols():
            raise NotSupportedError(
                "QuestDB has no correlated subqueries (OuterRef): filter with an "
                "uncorrelated Subquery (field__in=Subquery(qs.values('field'))), or use "
                "latest_on() for the newest row per key."
            )
        return super().as_sql(with_limits, with_col_aliases)

    def pre_sql_setup(self, with_col_aliases=False):
        extra_select, order_by, group_by = super().pre_sql_setup(with_col_aliases)
        if self.having is not None:
            # No HAVING in QuestDB: filter the grouped rows from an outer query,
            # as Django does for filters on window functions (QUALIFY).
            # https://questdb.com/docs/query/sql/group-by/
            self.qualify = (
                self.having if self.qualify is None else WhereNode([self.having, self.qualify], AND)
            )
            self.having = None
        if getattr(self.query, "questdb_sample_by", None) is not None:
            group_by = []  # SAMPLE BY groups by its keys and the time bucket itself
        self._filter_after_latest_on()
        return extra_select, order_by, group_by

    def _filter_after_latest_on(self) -> None:
        """Filters chained after latest_on() apply to the newest rows: QuestDB applies a
        WHERE before LATEST ON, so they go to an outer query (the QUALIFY emulation)."""
        before = getattr(self.query, "questdb_filters_before", None)
        where = self.where
        if before is None or where is None or len(where.children) <= before:
            return
        if where.connector != AND or where.negated:
            raise NotSupportedError(
                "QuestDB: latest_on() cannot be combined with an OR of querysets; "
                "filter with Q(...) | Q(...) after latest_on() instead."
            )
        later = WhereNode(where.children[before:], AND)
        self.where = WhereNode(where.children[:before], AND)
        self.qualify = later if self.qualify is None else WhereNode([later, self.qualify], AND)

    def get_from_clause(self):
        """LATEST ON / SAMPLE BY go after WHERE; with no WHERE, right after FROM."""
        from_, params = super().get_from_clause()
        clause = time_series_clause(self)
        if clause and not self._where_sql():
            from_ = [*from_[:-1], f"{from_[-1]} {clause}"]
        return from_, params

    def compile(self, node):
        sql, params = super().compile(node)
        if node is self.where and sql and (clause := time_series_clause(self)):
            sql = f"{sql} {clause}"
        return sql, params

    def _where_sql(self) -> str:
        if self.where is None:
            return ""
        try:
            return compiler.SQLCompiler.compile(self, self.where)[0]
        except FullResultSet:
            return ""
        except EmptyResultSet:
            return "0 = 1"


class SQLDeleteCompiler(compiler.SQLDeleteCompiler):
    def as_sql(self):
        raise NotSupportedError(
            "QuestDB has no DELETE: drop whole partitions "
            "(ALTER TABLE ... DROP PARTITION) or give the table a TTL instead."
        )
