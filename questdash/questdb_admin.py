"""QuestDB's tables in the admin: read-only, paged, fast on millions of rows, and still
useful during an outage.

Each changelist is rendered as one guarded QuestDB operation (breaker,
retry on connection errors, deadline). When it fails because QuestDB is
unreachable or the breaker is open, staff get the dashboard's banner and
the last good first page of that list, from the cached-fallback service;
with no copy yet, an empty list and the reason. Nobody can add, change or
delete a row: QuestDB's tables are written by their producers, not here.

Django 5.2's admin refuses models with a composite primary key at
registration, and names rows by a single pk in its URLs. These tables have
no single-column key (a row is a symbol at a timestamp), so the admins here
name rows themselves: the timestamp as epoch microseconds, other parts
quoted, joined by commas (/admin/questdash/price/AAPL,1764412005000000/change/).

On a large table every query of a changelist page must be cheap in QuestDB,
so the page asks QuestDB's way (tests/test_questdb_admin.py; the timings are
benchmarks/bench_admin.py's):
- rows in the order of the designated timestamp alone, read backwards, with
  no key as a tiebreaker (which made QuestDB sort the whole table: 3.4 s for
  page 1,000 of 10 M rows, against 0.5 ms);
- filter choices with LATEST ON (each key from the newest rows back), not
  SELECT DISTINCT, which reads every row;
- the date hierarchy from the first and last timestamps and one UNION ALL of
  `LIMIT 1` probes per period, not DISTINCT date_trunc() over every row;
- search by exact key, as typed or in capitals, not UPPER(x) LIKE on each row;
- one count per page: cheap in QuestDB (metadata when unfiltered, one
  column scanned when filtered), so the paginator still says how many.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Iterable

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.templatetags.admin_list import date_hierarchy
from django.contrib.admin.utils import label_for_field, quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, models
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.text import smart_split, unescape_string_literal

from resilience.admin import ReadOnlyAdmin
from resilience.errors import CircuitOpenError, is_unreachable
from resilience.fallback import (
    CIRCUIT_OPEN,
    DATABASE_UNAVAILABLE,
    OPENED_BY,
    CachedFallback,
    Envelope,
)
from resilience.registry import get_breaker

from .db.guard import questdb_call
from .db.router import QUESTDB_ALIAS
from .models import Position, Price, TradingSession
from .reasons import describe_failure

SEPARATOR = ","
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
# A page-1 view refreshes the list's last good copy at most this often (seconds).
COPY_FRESH_FOR = 30.0


def object_id(obj: models.Model) -> str:
    """The row's name in admin URLs: every part of its composite key."""
    parts = []
    for field in obj._meta.pk_fields:
        value = getattr(obj, field.attname)
        if isinstance(field, models.DateTimeField):
            parts.append(str((value - EPOCH) // datetime.timedelta(microseconds=1)))
        else:
            # Quoted twice: the admin unquotes the whole id once before get_object().
            parts.append(quote(quote(field.value_to_string(obj))))
    return SEPARATOR.join(parts)


def parse_object_id(model: type[models.Model], value: str) -> tuple | None:
    """The key object_id() wrote, or None for anything else."""
    fields = model._meta.pk_fields
    parts = value.split(SEPARATOR)
    if len(parts) != len(fields):
        return None
    key = []
    try:
        for field, part in zip(fields, parts, strict=True):
            if isinstance(field, models.DateTimeField):
                key.append(EPOCH + datetime.timedelta(microseconds=int(part)))
            else:
                key.append(field.to_python(unquote(part)))
    except (ValueError, OverflowError, ValidationError):
        return None
    return tuple(key)


class QuestDBChangeList(ChangeList):
    def url_for_result(self, result):
        return reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
            args=(object_id(result),),
            current_app=self.model_admin.admin_site.name,
        )

    def _get_deterministic_ordering(self, ordering):
        """The designated timestamp first is QuestDB's own, stable order: add no tiebreaker."""
        if ordering and _field_name(ordering[0]) == self.model.designated_timestamp:
            return list(ordering)
        return super()._get_deterministic_ordering(ordering)


def _field_name(part) -> str | None:
    if isinstance(part, str):
        return part.lstrip("-")
    expression = getattr(part, "expression", part)  # OrderBy(F("ts"))
    return getattr(expression, "name", None)


class LatestValuesFilter(admin.AllValuesFieldListFilter):
    """The values of a SYMBOL column, found with LATEST ON (newest rows back, each key
    once) instead of SELECT DISTINCT over every row."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.lookup_choices = (
            model_admin.get_queryset(request)
            .latest_on(field_path)
            .order_by(field_path)
            .values_list(field_path, flat=True)
        )


MAX_PERIOD_PROBES = 400


class Periods:
    """A changelist's queryset as Django's date_hierarchy() reads it, answered cheaply.

    date_hierarchy() asks for the first and last timestamps (Min/Max over every
    row) and for the periods that hold rows (DISTINCT date_trunc() over every
    row). On the designated timestamp, QuestDB answers the first with ORDER BY
    ts LIMIT 1, and the second with one `LIMIT 1` probe per calendar period
    between them, all in one UNION ALL.
    """

    def __init__(self, queryset: models.QuerySet, field_name: str) -> None:
        self.queryset = queryset
        self.field_name = field_name
        self._ends: dict[str, datetime.datetime | None] = {}

    def aggregate(self, **aggregates) -> dict:
        """{name: first or last timestamp} for Min/Max aggregates, each read once."""
        return {
            name: self._end("" if isinstance(aggregate, models.Min) else "-")
            for name, aggregate in aggregates.items()
        }

    def _end(self, direction: str) -> datetime.datetime | None:
        if direction not in self._ends:
            found = self._values(self.queryset.order_by(f"{direction}{self.field_name}")[:1])
            self._ends[direction] = found[0] if found else None
        return self._ends[direction]

    def datetimes(self, field_name: str, kind: str) -> list[datetime.datetime]:
        ends = self.aggregate(first=models.Min(field_name), last=models.Max(field_name))
        first, last = ends["first"], ends["last"]
        if first is None:
            return []
        starts = list(_period_starts(timezone.localtime(first), timezone.localtime(last), kind))
        if len(starts) > MAX_PERIOD_PROBES:
            return list(self.queryset.datetimes(field_name, kind))
        ends = [*starts[1:], _next_period(starts[-1], kind)]
        probes = [
            self.queryset.filter(**{f"{field_name}__gte": a, f"{field_name}__lt": b})
            .order_by()
            .values_list(field_name, flat=True)[:1]
            for a, b in zip(starts, ends, strict=True)
        ]
        found = self._values(probes[0].union(*probes[1:], all=True)) if probes else []
        present = {_period_start(timezone.localtime(value), kind) for value in found}
        return [start for start in starts if start in present]

    def _values(self, queryset) -> list:
        return list(queryset.values_list(self.field_name, flat=True))


def _period_start(value: datetime.datetime, kind: str) -> datetime.datetime:
    value = value.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind in {"month", "year"}:
        value = value.replace(day=1)
    if kind == "year":
        value = value.replace(month=1)
    return value


def _next_period(start: datetime.datetime, kind: str) -> datetime.datetime:
    if kind == "day":
        return timezone.localtime(start + datetime.timedelta(days=1)).replace(hour=0)
    if kind == "month":
        year, month = divmod(start.month, 12)
        return start.replace(year=start.year + year, month=month + 1)
    return start.replace(year=start.year + 1)


def _period_starts(
    first: datetime.datetime, last: datetime.datetime, kind: str
) -> Iterable[datetime.datetime]:
    start = _period_start(first, kind)
    while start <= last:
        yield start
        start = _next_period(start, kind)


def fast_date_hierarchy(cl: ChangeList) -> dict:
    """Django's date_hierarchy(), with its two full-table queries answered by Periods."""
    view = copy.copy(cl)
    view.queryset = Periods(cl.queryset, cl.date_hierarchy)
    return date_hierarchy(view)


def failure_reason(exc: BaseException) -> str:
    """Why the page could not be read, worded as the dashboard's envelopes word it."""
    if isinstance(exc, CircuitOpenError):
        cause = exc.opened_by
        opened_by = f"{OPENED_BY}{describe_failure(cause)}" if cause is not None else ""
        return f"{CIRCUIT_OPEN}: {exc}{opened_by}"
    kind = DATABASE_UNAVAILABLE if is_unreachable(exc) else "query_error"
    return f"{kind}: {describe_failure(getattr(exc, 'cause', None) or exc)}"


class QuestDBModelAdmin(ReadOnlyAdmin):
    """A read-only changelist and row view of one QuestDB table.

    Counting is cheap in QuestDB (an unfiltered count() reads partition
    metadata, a filtered one scans one column), so the paginator counts;
    the second, unfiltered count beside a filtered one is skipped.
    """

    actions = None
    list_per_page = 100
    list_max_show_all = 0  # never "show all" of a table of millions
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice: a full scan each
    show_full_result_count = False
    date_hierarchy = "ts"
    ordering = ("-ts",)
    change_list_template = "admin/questdash/questdb_change_list.html"
    change_form_template = "admin/questdash/questdb_change_form.html"
    degraded_template = "admin/questdash/questdb_change_list_degraded.html"
    # Search by exact key (as typed or in capitals): QuestDB matches a SYMBOL by its
    # key, where Django's case-insensitive lookups read every row as text.
    exact_search = True

    def get_urls(self):
        """The list and one row's page: no add, history or delete views."""
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("", view(self.changelist_view), name=f"{prefix}_changelist"),
            path("<path:object_id>/change/", view(self.change_view), name=f"{prefix}_change"),
        ]

    def get_changelist(self, request, **kwargs):
        return QuestDBChangeList

    def get_search_results(self, request, queryset, search_term):
        if not self.exact_search:
            return super().get_search_results(request, queryset, search_term)
        for term in smart_split(search_term):
            if term[0] in "\"'" and term[0] == term[-1]:
                term = unescape_string_literal(term)
            spellings = sorted({term, term.upper()})
            match = Q()
            for name in self.search_fields:
                match |= Q(**{f"{name}__in": spellings})
            queryset = queryset.filter(match)
        return queryset, False

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Django wraps this view in a transaction on db_for_write(model), which the
        # router refuses for QuestDB's read-only models: a row page reads only.
        return self._changeform_view(request, object_id, form_url, extra_context)

    def get_object(self, request, object_id, from_field=None):
        key = parse_object_id(self.model, object_id)
        if key is None:
            return None
        return self.get_queryset(request).filter(pk=key).first()

    def first_page_copy(self, rows: list[dict] | None = None) -> CachedFallback:
        """The list's last good first page: stored from `rows`, served when QuestDB is away."""
        opts = self.opts
        return CachedFallback(
            f"admin_{opts.app_label}_{opts.model_name}_first_page",
            lambda: rows or [],
            breaker_name=QUESTDB_ALIAS,
            runner=questdb_call,
            fresh_for=COPY_FRESH_FOR,
            dependency_label="QuestDB",
            describe_failure=describe_failure,
        )

    def changelist_view(self, request, extra_context=None):
        """The live list, rendered as one guarded QuestDB operation; the copy if that fails."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied

        def render():
            response = super(QuestDBModelAdmin, self).changelist_view(request, extra_context)
            return response.render() if isinstance(response, TemplateResponse) else response

        try:
            response = questdb_call(f"admin.{self.opts.model_name}.changelist", render)
        except Exception as exc:
            cause = getattr(exc, "cause", None)
            if is_unreachable(exc) or isinstance(cause, DatabaseError):
                return self.degraded_changelist(request, failure_reason(exc))
            if cause is not None:
                raise cause from None  # not QuestDB's doing: Django's own handling applies
            raise
        if not request.GET and isinstance(response, TemplateResponse):
            rows = [self.copy_row(obj) for obj in response.context_data["cl"].result_list]
            if rows:
                self.first_page_copy(rows).get()  # stores them when the copy is old
        return response

    def copy_row(self, obj: models.Model) -> dict:
        return {name: getattr(obj, name) for name in self.list_display}

    def degraded_changelist(self, request: HttpRequest, reason: str) -> HttpResponse:
        """The banner, and the last good first page (or an empty list), with the reason."""
        envelope: Envelope = self.first_page_copy().serve_copy(reason)
        columns = [label_for_field(name, self.model, self) for name in self.list_display]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Select {self.opts.verbose_name} to view",
            "opts": self.opts,
            "envelope": envelope,
            "columns": columns,
            "rows": [[row.get(name) for name in self.list_display] for row in envelope.data or []],
            "breaker": get_breaker(QUESTDB_ALIAS).snapshot(),
            "refresh_seconds": int(settings.DASHBOARD_REFRESH_INTERVAL),
        }
        response = TemplateResponse(
            request, self.degraded_template, context, status=envelope.http_status
        )
        if envelope.status == "error":
            response["Retry-After"] = str(envelope.retry_after)
        return response


def register(model: type[models.Model], admin_class: type[QuestDBModelAdmin]) -> None:
    """AdminSite.register() refuses composite primary keys (Django 5.2); these admins
    name their rows themselves (object_id), so they take their place directly."""
    admin.site._registry[model] = admin_class(model, admin.site)


class PriceAdmin(QuestDBModelAdmin):
    list_display = ("symbol", "price", "ts")
    list_filter = (("symbol", LatestValuesFilter),)
    search_fields = ("symbol",)


class PositionAdmin(QuestDBModelAdmin):
    list_display = ("session_id", "symbol", "quantity", "avg_price", "ts")
    list_filter = (("session_id", LatestValuesFilter), ("symbol", LatestValuesFilter))
    search_fields = ("session_id", "symbol")


class TradingSessionAdmin(QuestDBModelAdmin):
    list_display = ("session_id", "name", "strategy", "status", "started_at", "ts")
    list_filter = (("strategy", LatestValuesFilter), ("status", LatestValuesFilter))
    search_fields = ("session_id", "name", "strategy")
    exact_search = False  # a few rows per session: Django's icontains reads them all quickly


register(Price, PriceAdmin)
register(Position, PositionAdmin)
register(TradingSession, TradingSessionAdmin)
