"""QuestDB's spelling of Django's database functions and lookups.

Django picks `as_<vendor>` when an expression has one; with vendor
"questdb" it drops the postgresql variants, so the ones QuestDB accepts are
registered again here, as django-cockroachdb does for its vendor. The rest
fix a QuestDB difference or refuse what QuestDB cannot do, by name.
"""

from __future__ import annotations

import datetime
import uuid

from django.db import NotSupportedError
from django.db.models import DateField, Exists, Value
from django.db.models.functions import Cast, ConcatPair, Length, Now, StrIndex
from django.db.models.lookups import Range

# Python type of a Value -> QuestDB type. QuestDB refuses untyped bind
# variables in CASE ("CASE values cannot be bind variables") and COALESCE.
VALUE_TYPES: dict[type, str] = {
    bool: "boolean",  # before int: bool is an int
    int: "long",
    float: "double",
    str: "varchar",
    datetime.datetime: "timestamp",  # before date: a datetime is a date
    datetime.date: "date",
    uuid.UUID: "uuid",
}
INT_RANGE = (-(2**31) + 1, 2**31 - 1)  # QuestDB's INT; -2**31 is its NULL


def typed_value(self, compiler, connection, **extra_context):
    sql, params = self.as_sql(compiler, connection, **extra_context)
    if sql != "%s":
        return sql, params
    db_type = next((t for py, t in VALUE_TYPES.items() if isinstance(self.value, py)), None)
    if db_type == "long" and INT_RANGE[0] <= self.value <= INT_RANGE[1]:
        db_type = "int"  # what substring(), round() and the like take
    return (f"%s::{db_type}" if db_type else sql), params


def null_length(self, compiler, connection, **extra_context):
    # QuestDB's length(NULL) is -1; every other database says NULL.
    sql, params = self.as_sql(compiler, connection, **extra_context)
    return f"nullif({sql}, -1)", params


def now(self, compiler, connection, **extra_context):
    # Neither CURRENT_TIMESTAMP nor STATEMENT_TIMESTAMP(): now() is stable within a query.
    return self.as_sql(compiler, connection, template="now()", **extra_context)


def range_lookup(self, compiler, connection):
    """BETWEEN takes timestamps only in QuestDB: other types get >= AND <=."""
    if isinstance(self.lhs.output_field, DateField):  # DateTimeField included
        return self.as_sql(compiler, connection)
    lhs_sql, lhs_params = self.process_lhs(compiler, connection)
    (low, high), rhs_params = self.process_rhs(compiler, connection)
    split = low.count("%s")
    return f"({lhs_sql} >= {low} AND {lhs_sql} <= {high})", (
        *lhs_params, *rhs_params[:split], *lhs_params, *rhs_params[split:],
    )  # fmt: skip


def no_exists(self, compiler, connection, **extra_context):
    raise NotSupportedError(
        "QuestDB has no EXISTS (subquery): filter with field__in=Subquery(qs.values('field')) "
        "instead."
    )


def register_functions() -> None:
    Cast.as_questdb = Cast.as_postgresql  # (x)::type, with QuestDB's type names
    ConcatPair.as_questdb = ConcatPair.as_postgresql  # CONCAT of values cast to text
    StrIndex.as_questdb = StrIndex.as_postgresql  # STRPOS(); QuestDB has no INSTR()
    Value.as_questdb = typed_value
    Length.as_questdb = null_length
    Now.as_questdb = now
    Range.as_questdb = range_lookup
    Exists.as_questdb = no_exists
