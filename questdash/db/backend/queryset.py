"""QuestDB's time-series SQL from the ORM: LATEST ON and SAMPLE BY.

The ORM has no words for either, so QuestDB models get two QuerySet methods
that mark the query; the compiler writes the clause after WHERE. Both need
the model's designated timestamp (`designated_timestamp = "ts"` on the
model class).

    Price.objects.filter(symbol__in=["AAPL", "MSFT"]).latest_on("symbol")
        -> SELECT ... WHERE symbol IN (...) LATEST ON ts PARTITION BY symbol
    Price.objects.filter(ts__gte=since).sample_by("5m", "symbol", price=Avg("price"))
        -> SELECT symbol, ts, avg(price) AS price ... SAMPLE BY 5m ALIGN TO CALENDAR

https://questdb.com/docs/query/sql/latest-on/
https://questdb.com/docs/query/sql/sample-by/
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

from django.db import NotSupportedError, connections, models

if TYPE_CHECKING:
    from django.db.models.sql.compiler import SQLCompiler

# n, U, T, s, m, h, d, w, M, y: nano- and microseconds up to years. A literal in the SQL
# (QuestDB wants "one letter sample by period unit", not a bind variable): validated.
SAMPLE_INTERVAL = re.compile(r"[1-9][0-9]{0,8}[nUTsmhdwMy]")
SAMPLE_FILL = re.compile(r"NONE|NULL|PREV|LINEAR|-?[0-9]{1,18}(\.[0-9]{1,18})?")


@dataclass(frozen=True)
class SampleBy:
    interval: str
    fill: str | None = None


def designated_timestamp(model: type[models.Model]) -> str:
    """The column of the model's designated timestamp, or NotSupportedError."""
    name = getattr(model, "designated_timestamp", None)
    if not name:
        raise NotSupportedError(
            f"{model.__name__} has no designated timestamp: LATEST ON and SAMPLE BY need "
            f"one in QuestDB. Set designated_timestamp = '<field>' on the model."
        )
    return model._meta.get_field(name).column


class QuestDBQuerySet(models.QuerySet):
    def latest_on(self, *partition_by: str) -> Self:
        """The newest row of each combination of `partition_by` fields, in chain order.

        QuestDB's LATEST ON reads the table backwards and stops once each key
        is found: far cheaper than the greatest-per-group subquery it replaces.
        Filters before latest_on() choose the rows it looks at; filters after
        it choose among the newest rows (QuestDB itself would apply them first:
        the compiler filters the newest rows from an outer query).

            TradingSession.objects.latest_on("session_id").filter(status="active")
                -> sessions whose newest row says active
        """
        if not partition_by:
            raise TypeError("latest_on() needs at least one field to partition by.")
        designated_timestamp(self.model)
        clone = self._chain()
        clone.query.questdb_latest_on = tuple(
            self.model._meta.get_field(name).column for name in partition_by
        )
        clone.query.questdb_filters_before = len(clone.query.where.children)
        return clone

    def count(self) -> int:
        """As Django counts, except after sample_by(): the buckets, counted by QuestDB.

        Django would count without the aggregates it does not need, and a
        SAMPLE BY without an aggregate is not QuestDB SQL.
        """
        if getattr(self.query, "questdb_sample_by", None) is None or self._result_cache:
            return super().count()
        sql, params = self.query.get_compiler(self.db).as_sql()
        with connections[self.db].cursor() as cursor:
            cursor.execute(f"SELECT count() FROM ({sql})", params)
            return cursor.fetchone()[0]

    def sample_by(
        self, interval: str, *keys: str, fill: str | None = None, **aggregates
    ) -> models.QuerySet:
        """Aggregates per time bucket (and per key), as values() dicts: QuestDB's SAMPLE BY.

        `interval` is QuestDB's: "10s", "5m", "1h", "1d", "1M"... Buckets align
        to the calendar (UTC); `fill` ("NULL", "PREV", "LINEAR" or a number)
        fills empty buckets. Each row holds the keys, the bucket's start
        under the timestamp's name, and the aggregates.
        """
        if not SAMPLE_INTERVAL.fullmatch(interval):
            raise ValueError(f"Not a QuestDB SAMPLE BY interval: {interval!r} (e.g. '5m', '1h').")
        if fill is not None and not SAMPLE_FILL.fullmatch(str(fill).upper()):
            raise ValueError(f"Not a QuestDB FILL option: {fill!r}.")
        if not aggregates:
            raise TypeError("sample_by() needs at least one aggregate, e.g. price=Avg('price').")
        timestamp = designated_timestamp(self.model)
        clone = self.values(*keys, timestamp).annotate(**aggregates)
        clone.query.questdb_sample_by = SampleBy(interval, str(fill).upper() if fill else None)
        return clone


def time_series_clause(compiler: SQLCompiler) -> str | None:
    """The LATEST ON or SAMPLE BY clause of the compiler's query, if it has one."""
    query = compiler.query
    quote = compiler.connection.ops.quote_name
    if partition_by := getattr(query, "questdb_latest_on", None):
        # Bare column names: QuestDB refuses "table"."column" here.
        timestamp = quote(designated_timestamp(query.model))
        return f"LATEST ON {timestamp} PARTITION BY {', '.join(map(quote, partition_by))}"
    if sample := getattr(query, "questdb_sample_by", None):
        fill = f" FILL({sample.fill})" if sample.fill else ""
        return f"SAMPLE BY {sample.interval}{fill} ALIGN TO CALENDAR"
    return None
