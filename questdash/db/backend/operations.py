"""QuestDB's SQL dialect where it differs from PostgreSQL's.

Pagination: QuestDB has no OFFSET; it pages with `LIMIT lo, hi` (rows lo+1
to hi). Dates: QuestDB's date_trunc wants its unit as a literal, it has no
`AT TIME ZONE` and no TIME type, and `::date` keeps the time of day.
"""

from __future__ import annotations

import datetime
import re

from django.conf import settings
from django.db import NotSupportedError
from django.db.backends.postgresql.operations import (
    DatabaseOperations as PostgresDatabaseOperations,
)

# QuestDB's LIMIT needs an upper bound: a slice without one reads to the end.
NO_UPPER_BOUND = 2**63 - 1

# date_trunc() accepts only a constant unit ("expected: STRING constant"), so
# the unit is written into the SQL: only these words, never user input.
# https://questdb.com/docs/query/functions/date-time/#date_trunc
TRUNC_UNITS = frozenset({"year", "quarter", "month", "week", "day", "hour", "minute", "second"})
_EXTRACT_UNIT = re.compile(r"[a-z_]+")

TIME_NOT_SUPPORTED = (
    "QuestDB has no TIME type: use ExtractHour/ExtractMinute/ExtractSecond, "
    "or truncate with TruncHour/TruncMinute/TruncSecond instead of __time and TruncTime."
)


def as_utc(value):
    """QuestDB timestamps carry no zone and are always UTC: say so."""
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value


class DatabaseOperations(PostgresDatabaseOperations):
    compiler_module = "questdash.db.backend.compiler"
    cast_data_types = {"AutoField": "int", "BigAutoField": "long", "SmallAutoField": "short"}

    def limit_offset_sql(self, low_mark: int | None, high_mark: int | None) -> str:
        """`LIMIT hi` or `LIMIT lo, hi`: https://questdb.com/docs/query/sql/limit/"""
        low = low_mark or 0
        if not low:
            return "" if high_mark is None else f"LIMIT {int(high_mark)}"
        high = NO_UPPER_BOUND if high_mark is None else high_mark
        return f"LIMIT {int(low)}, {int(high)}"

    def distinct_sql(self, fields, params):
        if fields:
            raise NotSupportedError(
                "QuestDB has no DISTINCT ON: use latest_on(*fields) for the newest row "
                "of each key, or values(*fields).distinct()."
            )
        return super().distinct_sql(fields, params)

    def get_db_converters(self, expression):
        converters = super().get_db_converters(expression)
        internal_type = expression.output_field.get_internal_type()
        if internal_type == "DateTimeField":
            converters.append(self.convert_datetimefield_value)
        elif internal_type == "DateField":
            converters.append(self.convert_datefield_value)
        return converters

    def convert_datetimefield_value(self, value, expression, connection):
        return as_utc(value) if settings.USE_TZ else value

    def convert_datefield_value(self, value, expression, connection):
        # QuestDB's DATE is a millisecond timestamp: a date's time of day is 00:00.
        return value.date() if isinstance(value, datetime.datetime) else value

    def _convert_sql_to_tz(self, sql, params, tzname):
        """to_timezone() instead of AT TIME ZONE; UTC, which QuestDB stores, needs nothing."""
        if not tzname or not settings.USE_TZ or tzname in {"UTC", "Etc/UTC"}:
            return sql, params
        return f"to_timezone({sql}, %s)", (*params, tzname)

    def _trunc(self, lookup_type: str, sql: str) -> str:
        if lookup_type not in TRUNC_UNITS:
            raise ValueError(f"Invalid truncation unit for QuestDB: {lookup_type!r}")
        return f"date_trunc('{lookup_type}', {sql})"

    def date_trunc_sql(self, lookup_type, sql, params, tzname=None):
        sql, params = self._convert_sql_to_tz(sql, params, tzname)
        return self._trunc(lookup_type, sql), params

    def datetime_trunc_sql(self, lookup_type, sql, params, tzname):
        sql, params = self._convert_sql_to_tz(sql, params, tzname)
        return self._trunc(lookup_type, sql), params

    def datetime_cast_date_sql(self, sql, params, tzname):
        # `::date` keeps the time of day in QuestDB (its DATE is milliseconds).
        sql, params = self._convert_sql_to_tz(sql, params, tzname)
        return self._trunc("day", sql), params

    def date_extract_sql(self, lookup_type, sql, params):
        # https://questdb.com/docs/query/functions/date-time/#extract
        if lookup_type == "week_day":
            return f"(extract(dow FROM {sql}) + 1)", params  # Sunday=1 ... Saturday=7
        if lookup_type == "iso_week_day":
            return f"extract(isodow FROM {sql})", params
        if lookup_type == "iso_year":
            return f"extract(isoyear FROM {sql})", params
        if not _EXTRACT_UNIT.fullmatch(lookup_type):
            raise ValueError(f"Invalid lookup type: {lookup_type!r}")
        return f"extract({lookup_type} FROM {sql})", params

    def datetime_extract_sql(self, lookup_type, sql, params, tzname):
        sql, params = self._convert_sql_to_tz(sql, params, tzname)
        return self.date_extract_sql(lookup_type, sql, params)

    def datetime_cast_time_sql(self, sql, params, tzname):
        raise NotSupportedError(TIME_NOT_SUPPORTED)

    def time_trunc_sql(self, lookup_type, sql, params, tzname=None):
        raise NotSupportedError(TIME_NOT_SUPPORTED)

    def time_extract_sql(self, lookup_type, sql, params):
        raise NotSupportedError(TIME_NOT_SUPPORTED)

    def format_for_duration_arithmetic(self, sql):
        return sql  # durations are microseconds, which QuestDB adds to timestamps

    def combine_duration_expression(self, connector, sub_expressions):
        """timestamp +/- microseconds; QuestDB's minus gives a number, so cast it back."""
        lhs, rhs = sub_expressions
        if connector == "+":
            return f"({lhs} + {rhs})"
        if connector == "-":
            return f"({lhs} - {rhs})::timestamp"
        raise NotSupportedError(
            f"QuestDB cannot apply {connector!r} to a timestamp and a duration: "
            f"add or subtract timedeltas only."
        )
