"""The ORM compatibility matrix, against the real QuestDB.

One row per ORM feature. A supported row must return what the equivalent
hand-written QuestDB SQL returns; an unsupported one must raise Django's
NotSupportedError naming QuestDB and saying what to use instead, never a
raw parse error. The README's matrix table is this file, in prose.

Most rows read the seeded demo tables. Rows about NULLs, extreme values,
LIKE wildcards and calendar boundaries read `orm_matrix_ticks`, a small
table made here (QuestDB has no DELETE, so the seeded tables stay clean).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import NotSupportedError, connections, models
from django.db.models import (
    Avg,
    Case,
    CharField,
    Count,
    DecimalField,
    Exists,
    F,
    FloatField,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import (
    Cast,
    Coalesce,
    Concat,
    Extract,
    ExtractHour,
    Length,
    Lower,
    StrIndex,
    Substr,
    TruncDate,
    TruncDay,
    TruncHour,
    TruncMinute,
    TruncMonth,
    TruncQuarter,
    TruncTime,
    TruncWeek,
    TruncYear,
    Upper,
)

from questdash.db.backend.operations import as_utc
from questdash.db.backend.queryset import QuestDBQuerySet
from questdash.models import Position, Price, TradingSession

pytestmark = [pytest.mark.usefixtures("questdb_server"), pytest.mark.django_db(databases="__all__")]

UTC = datetime.UTC
NEW_YORK = ZoneInfo("America/New_York")


class Tick(models.Model):
    """A test-only QuestDB table with NULLs, extremes and LIKE wildcards in it."""

    questdb_table = True
    designated_timestamp = "ts"
    name = models.CharField(max_length=50, null=True)  # noqa: DJ001 - NULLs are the point
    sym = models.CharField(max_length=8, null=True)  # noqa: DJ001
    qty = models.FloatField(null=True)
    n = models.IntegerField(null=True)
    ts = models.DateTimeField(primary_key=True)

    objects = QuestDBQuerySet.as_manager()

    class Meta:
        app_label = "questdash"
        managed = False
        db_table = "orm_matrix_ticks"

    def __str__(self) -> str:
        return f"{self.name} at {self.ts}"


def at(*args: int) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


TICKS = [
    ("Alpha", "AAA", 1.5, 1, at(2024, 1, 1)),
    (None, None, None, None, at(2024, 1, 2)),
    ("beta_x", "bbb", -2.0, -3, at(2024, 1, 3, 10)),
    ("betaXx", "BBB", 1e300, 2147483647, at(2024, 3, 15, 23, 59, 59, 999999)),
    ("50% off", "Ccc", 0.0, 0, at(2024, 12, 31, 12, 30)),
    ("Gamma", "AAA", 2.5, 7, at(2025, 6, 1, 6)),
]


@pytest.fixture(scope="module", autouse=True)
def ticks(questdb_server, django_db_blocker):
    with django_db_blocker.unblock(), connections["questdb"].cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS orm_matrix_ticks")
        cursor.execute(
            "CREATE TABLE orm_matrix_ticks (name VARCHAR, sym SYMBOL, qty DOUBLE, n INT,"
            " ts TIMESTAMP) TIMESTAMP(ts) PARTITION BY MONTH WAL"
        )
        cursor.executemany(
            "INSERT INTO orm_matrix_ticks (name, sym, qty, n, ts) VALUES (%s, %s, %s, %s, %s)",
            TICKS,
        )
        deadline = time.monotonic() + 30
        while True:  # WAL rows become visible asynchronously
            cursor.execute("SELECT count() FROM orm_matrix_ticks")
            if cursor.fetchone()[0] == len(TICKS):
                break
            assert time.monotonic() < deadline, "QuestDB did not apply the test rows"
            time.sleep(0.05)


def sql(query: str, params: Sequence[Any] = ()) -> list[tuple]:
    """Hand-written SQL, on the same alias; timestamps marked UTC as the ORM marks them."""
    with connections["questdb"].cursor() as cursor:
        cursor.execute(query, params or None)  # no params: "%" is a plain character
        return [tuple(map(as_utc, row)) for row in cursor.fetchall()]


def flat(rows: list[tuple]) -> list:
    return [row[0] for row in rows]


def one(rows: list[tuple]) -> Any:
    return rows[0][0]


@dataclass(frozen=True)
class Row:
    feature: str
    orm: Callable[[], Any]
    sql: str
    params: Sequence[Any] = ()
    shape: Callable[[list[tuple]], Any] = list

    def expected(self) -> Any:
        return self.shape(sql(self.sql, self.params))


def fields(queryset, *names) -> list[tuple]:
    return list(queryset.values_list(*names))


def names(queryset) -> list:
    return list(queryset.order_by("ts").values_list("name", flat=True))


T = "orm_matrix_ticks"
SUPPORTED = [
    # Lookups
    Row("exact", lambda: Price.objects.filter(symbol="AAPL").count(),
        "SELECT count() FROM prices WHERE symbol = %s", ["AAPL"], one),
    Row("iexact", lambda: names(Tick.objects.filter(name__iexact="ALPHA")),
        f"SELECT name FROM {T} WHERE upper(name) = 'ALPHA' ORDER BY ts", (), flat),
    Row("contains (LIKE's _ escaped)", lambda: names(Tick.objects.filter(name__contains="a_x")),
        f"SELECT name FROM {T} WHERE strpos(name, 'a_x') > 0 ORDER BY ts", (), flat),
    Row("contains %", lambda: names(Tick.objects.filter(name__contains="0%")),
        f"SELECT name FROM {T} WHERE strpos(name, '0%') > 0 ORDER BY ts", (), flat),
    Row("icontains", lambda: Price.objects.filter(symbol__icontains="usd").count(),
        "SELECT count() FROM prices WHERE symbol LIKE '%USD%'", (), one),
    Row("startswith", lambda: fields(TradingSession.objects.filter(name__startswith="Crypto")
                                     .order_by("ts"), "session_id", "status"),
        "SELECT session_id, status FROM trading_sessions WHERE name LIKE 'Crypto%' ORDER BY ts"),
    Row("istartswith / endswith", lambda: names(Tick.objects.filter(name__istartswith="BETA",
                                                                     name__endswith="x")),
        f"SELECT name FROM {T} WHERE name IN ('beta_x', 'betaXx') ORDER BY ts", (), flat),
    Row("in", lambda: Price.objects.filter(symbol__in=["AAPL", "BTC-USD"]).count(),
        "SELECT count() FROM prices WHERE symbol IN ('AAPL', 'BTC-USD')", (), one),
    Row("range on numbers", lambda: Price.objects.filter(price__range=(100, 250)).count(),
        "SELECT count() FROM prices WHERE price >= 100 AND price <= 250", (), one),
    Row("range on timestamps", lambda: names(Tick.objects.filter(
            ts__range=(at(2024, 1, 2), at(2024, 3, 15, 23, 59, 59, 999999)))),
        f"SELECT name FROM {T} WHERE ts BETWEEN '2024-01-02' AND '2024-03-15T23:59:59.999999Z'"
        " ORDER BY ts", (), flat),
    Row("gt / lt / gte / lte", lambda: Price.objects.filter(price__gt=1000, price__lt=5000,
                                                            ts__gte=at(2000, 1, 1)).count(),
        "SELECT count() FROM prices WHERE price > 1000 AND price < 5000", (), one),
    Row("isnull=True", lambda: list(Tick.objects.filter(name__isnull=True, qty__isnull=True)
                                    .values_list("ts", flat=True)),
        f"SELECT ts FROM {T} WHERE name IS NULL AND qty IS NULL", (), flat),
    Row("isnull=False", lambda: names(Tick.objects.filter(n__isnull=False)),
        f"SELECT name FROM {T} WHERE n IS NOT NULL ORDER BY ts", (), flat),
    Row("regex", lambda: Price.objects.filter(symbol__regex=r"^[A-Z]{3}-").count(),
        "SELECT count() FROM prices WHERE symbol ~ '^[A-Z]{3}-'", (), one),
    Row("iregex", lambda: names(Tick.objects.filter(name__iregex=r"^b.*X$")),
        f"SELECT name FROM {T} WHERE name ~ '(?i)^b.*X$' ORDER BY ts", (), flat),
    # Date and time transforms (UTC, the site's zone)
    Row("__year", lambda: names(Tick.objects.filter(ts__year=2024)),
        f"SELECT name FROM {T} WHERE ts IN '2024' ORDER BY ts", (), flat),
    Row("__month", lambda: names(Tick.objects.filter(ts__month=1)),
        f"SELECT name FROM {T} WHERE month(ts) = 1 ORDER BY ts", (), flat),
    Row("__day", lambda: names(Tick.objects.filter(ts__day__in=[1, 31])),
        f"SELECT name FROM {T} WHERE day(ts) IN (1, 31) ORDER BY ts", (), flat),
    Row("__hour", lambda: names(Tick.objects.filter(ts__hour__gte=10)),
        f"SELECT name FROM {T} WHERE hour(ts) >= 10 ORDER BY ts", (), flat),
    Row("__date", lambda: names(Tick.objects.filter(ts__date=datetime.date(2024, 3, 15))),
        f"SELECT name FROM {T} WHERE ts IN '2024-03-15' ORDER BY ts", (), flat),
    Row("__week_day / __quarter", lambda: names(Tick.objects.filter(ts__week_day=2,
                                                                    ts__quarter=1)),
        f"SELECT name FROM {T} WHERE day_of_week_sunday_first(ts) = 2"
        " AND extract(quarter FROM ts) = 1 ORDER BY ts", (), flat),
    *[
        Row(f"{trunc.__name__}", (lambda trunc=trunc: list(
                Tick.objects.annotate(t=trunc("ts")).values("t").annotate(n=Count("*"))
                .order_by("t").values_list("t", "n"))),
            f"SELECT date_trunc('{kind}', ts) t, count() FROM {T} GROUP BY 1 ORDER BY 1")
        for trunc, kind in [(TruncYear, "year"), (TruncQuarter, "quarter"),
                            (TruncMonth, "month"), (TruncWeek, "week"), (TruncDay, "day"),
                            (TruncHour, "hour"), (TruncMinute, "minute")]
    ],
    Row("TruncDate", lambda: list(Tick.objects.annotate(d=TruncDate("ts")).order_by("ts")
                                  .values_list("d", flat=True)),
        f"SELECT date_trunc('day', ts) FROM {T} ORDER BY ts", (),
        lambda rows: [row[0].date() for row in rows]),
    Row("TruncDay in another zone", lambda: list(
            Tick.objects.annotate(d=TruncDay("ts", tzinfo=NEW_YORK)).order_by("ts")
            .values_list("d", flat=True)),
        f"SELECT date_trunc('day', to_timezone(ts, 'America/New_York')) FROM {T} ORDER BY ts",
        (), lambda rows: [row[0].replace(tzinfo=NEW_YORK) for row in rows]),
    Row("Extract / ExtractHour", lambda: list(
            Tick.objects.annotate(y=Extract("ts", "year"), h=ExtractHour("ts"))
            .order_by("ts").values_list("y", "h")),
        f"SELECT year(ts), hour(ts) FROM {T} ORDER BY ts"),
    Row("dates()", lambda: list(Tick.objects.dates("ts", "month")),
        f"SELECT DISTINCT date_trunc('month', ts) FROM {T} ORDER BY 1", (),
        lambda rows: [row[0].date() for row in rows]),
    Row("dates() on the prices (the admin's date hierarchy)",
        lambda: list(Price.objects.dates("ts", "day")),
        "SELECT DISTINCT timestamp_floor('d', ts) FROM prices ORDER BY 1", (),
        lambda rows: [row[0].date() for row in rows]),
    Row("datetimes()", lambda: list(Tick.objects.datetimes("ts", "day", order="DESC")),
        f"SELECT DISTINCT timestamp_floor('d', ts) FROM {T} ORDER BY 1 DESC", (), flat),
    # Aggregates (NULLs ignored, as in SQL)
    Row("Count / Sum / Avg / Min / Max", lambda: Tick.objects.aggregate(
            c=Count("qty"), s=Sum("n"), a=Avg("n"), lo=Min("qty"), hi=Max("qty")),
        f"SELECT count(qty), sum(n), avg(n), min(qty), max(qty) FROM {T}", (),
        lambda rows: dict(zip(["c", "s", "a", "lo", "hi"], rows[0], strict=True))),
    Row("Count(distinct=True)", lambda: Price.objects.aggregate(n=Count("symbol", distinct=True)),
        "SELECT count_distinct(symbol) FROM prices", (), lambda rows: {"n": one(rows)}),
    Row("Count(filter=Q(...))", lambda: Price.objects.aggregate(
            n=Count("price", filter=Q(price__gt=1000))),
        "SELECT count() FROM prices WHERE price > 1000", (), lambda rows: {"n": one(rows)}),
    # values, annotate, order_by, distinct
    Row("values().annotate() (GROUP BY)", lambda: list(
            Price.objects.values("symbol").annotate(n=Count("*"), top=Max("price"))
            .order_by("symbol").values_list("symbol", "n", "top")),
        "SELECT symbol, count(), max(price) FROM prices ORDER BY symbol"),
    Row("annotate() filtered on an aggregate (HAVING)", lambda: list(
            Tick.objects.values("sym").annotate(total=Sum("n")).filter(total__gt=0)
            .order_by("sym").values_list("sym", "total")),
        f"SELECT sym, total FROM (SELECT sym, sum(n) total FROM {T}) WHERE total > 0"
        " ORDER BY sym"),
    Row("values_list(flat=True)", lambda: list(
            Position.objects.filter(session_id="S-1002").order_by("ts", "symbol")
            .values_list("quantity", flat=True)),
        "SELECT quantity FROM positions WHERE session_id = 'S-1002' ORDER BY ts, symbol", (),
        flat),
    Row("order_by descending", lambda: fields(
            TradingSession.objects.order_by("-ts", "session_id"), "session_id", "status"),
        "SELECT session_id, status FROM trading_sessions ORDER BY ts DESC, session_id"),
    Row("order_by nulls_last (strings)", lambda: list(
            Tick.objects.order_by(F("name").asc(nulls_last=True)).values_list("name", flat=True)),
        f"SELECT name FROM {T} ORDER BY name IS NULL, name", (), flat),
    Row("order_by nulls_first (doubles)", lambda: list(
            Tick.objects.order_by(F("qty").desc(nulls_first=True)).values_list("qty", flat=True)),
        f"SELECT qty FROM {T} ORDER BY qty IS NOT NULL, qty DESC", (), flat),
    Row("distinct()", lambda: list(
            Position.objects.values_list("session_id", flat=True).distinct()
            .order_by("session_id")),
        "SELECT DISTINCT session_id FROM positions ORDER BY 1", (), flat),
    # Slicing and fetching
    Row("slice with an offset [100:103]", lambda: fields(
            Price.objects.order_by("ts", "symbol")[100:103], "symbol", "price", "ts"),
        "SELECT symbol, price, ts FROM prices ORDER BY ts, symbol LIMIT 100, 103"),
    Row("slice with no end [4:]", lambda: list(Tick.objects.order_by("ts")[4:]
                                               .values_list("name", flat=True)),
        f"SELECT name FROM {T} ORDER BY ts LIMIT -2", (), flat),
    Row("exists()", lambda: (Price.objects.filter(symbol="AAPL").exists(),
                             Price.objects.filter(symbol="NOPE").exists()),
        "SELECT count() > 0 FROM prices WHERE symbol = 'AAPL'", (),
        lambda rows: (one(rows), False)),
    Row("count() of a slice", lambda: Price.objects.order_by("ts", "symbol")[10:40].count(),
        "SELECT count() FROM (SELECT * FROM prices LIMIT 10, 40)", (), one),
    Row("first() / last()", lambda: (Tick.objects.order_by("ts").first().name,
                                     Tick.objects.order_by("ts").last().name),
        f"SELECT name FROM {T} ORDER BY ts", (), lambda rows: (rows[0][0], rows[-1][0])),
    Row("iterator()", lambda: [p.price for p in Price.objects.filter(symbol="ETH-USD")
                               .order_by("ts").iterator(chunk_size=500)],
        "SELECT price FROM prices WHERE symbol = 'ETH-USD' ORDER BY ts", (), flat),
    Row("get(pk=(...)) on a composite key", lambda: Price.objects.get(
            pk=("AAPL", Price.objects.filter(symbol="AAPL").order_by("ts")[1500].ts)).price,
        "SELECT price FROM prices WHERE symbol = 'AAPL' ORDER BY ts LIMIT 1500, 1501", (), one),
    # Expressions
    Row("F()", lambda: names(Tick.objects.filter(qty__gt=F("n"))),
        f"SELECT name FROM {T} WHERE qty > n ORDER BY ts", (), flat),
    Row("F() arithmetic", lambda: list(Tick.objects.annotate(v=F("qty") * 2 + F("n"))
                                       .order_by("ts").values_list("v", flat=True)),
        f"SELECT qty * 2 + n FROM {T} ORDER BY ts", (), flat),
    Row("F() + timedelta", lambda: list(
            Tick.objects.annotate(later=F("ts") + datetime.timedelta(hours=36))
            .order_by("ts").values_list("later", flat=True)),
        f"SELECT dateadd('h', 36, ts) FROM {T} ORDER BY ts", (), flat),
    Row("F() - F() (timestamps)", lambda: list(
            TradingSession.objects.filter(status="stopped")
            .annotate(ran=F("ts") - F("started_at")).order_by("session_id")
            .values_list("ran", flat=True)),
        "SELECT datediff('s', started_at, ts) FROM trading_sessions WHERE status = 'stopped'"
        " ORDER BY session_id", (),
        lambda rows: [datetime.timedelta(seconds=row[0]) for row in rows]),
    Row("Q() with |, & and ~", lambda: Price.objects.filter(
            (Q(symbol="AAPL") | Q(symbol="MSFT")) & ~Q(price__lt=300)).count(),
        "SELECT count() FROM prices WHERE symbol IN ('AAPL', 'MSFT') AND price >= 300", (), one),
    Row("Case / When", lambda: list(Tick.objects.annotate(size=Case(
            When(qty__gt=100, then=Value("huge")), When(qty__gt=0, then=Value("some")),
            default=Value("none"))).order_by("ts").values_list("size", flat=True)),
        f"SELECT CASE WHEN qty > 100 THEN 'huge' WHEN qty > 0 THEN 'some' ELSE 'none' END"
        f" FROM {T} ORDER BY ts", (), flat),
    Row("Coalesce", lambda: list(Tick.objects.annotate(
            a=Coalesce("name", Value("?")), b=Coalesce("qty", Value(-1.0)))
            .order_by("ts").values_list("a", "b")),
        f"SELECT coalesce(name, '?'), coalesce(qty, -1.0) FROM {T} ORDER BY ts"),
    Row("Cast", lambda: list(Tick.objects.exclude(qty__gt=1e9).annotate(
            i=Cast("qty", IntegerField()), s=Cast("n", CharField()),
            f=Cast("n", FloatField()), d=Cast("qty", DecimalField(max_digits=12, decimal_places=2))
            ).order_by("ts").values_list("i", "s", "f", "d")),
        "SELECT cast(qty AS int), cast(n AS varchar), cast(n AS double),"
        f" cast(qty AS decimal(12, 2)) FROM {T} WHERE qty <= 1e9 OR qty IS NULL ORDER BY ts"),
    Row("Lower / Upper / Length", lambda: list(Tick.objects.annotate(
            lo=Lower("name"), up=Upper("sym"), ln=Length("name"))
            .order_by("ts").values_list("lo", "up", "ln")),
        f"SELECT lower(name), upper(sym), nullif(length(name), -1) FROM {T} ORDER BY ts"),
    Row("Concat / Substr / StrIndex", lambda: list(Tick.objects.annotate(
            c=Concat("sym", Value("-"), "name", output_field=CharField()),
            s=Substr("name", 2, 3), i=StrIndex("name", Value("a")))
            .order_by("ts").values_list("c", "s", "i")),
        f"SELECT concat(sym, '-', name), substring(name, 2, 3), strpos(name, 'a')"
        f" FROM {T} ORDER BY ts"),
    # Subqueries and joins
    Row("Subquery (uncorrelated, __in)", lambda: Position.objects.filter(
            symbol__in=Subquery(Price.objects.filter(price__gt=1000).values("symbol"))).count(),
        "SELECT count() FROM positions WHERE symbol IN"
        " (SELECT symbol FROM prices WHERE price > 1000)", (), one),
    Row("join by session_id (no foreign keys: a Subquery)", lambda: sorted(
            Position.objects.filter(session_id__in=TradingSession.objects.filter(
                strategy="momentum").values("session_id")).values_list("symbol", flat=True)
            .distinct()),
        "SELECT DISTINCT p.symbol FROM positions p JOIN trading_sessions s"
        " ON p.session_id = s.session_id WHERE s.strategy = 'momentum' ORDER BY 1", (), flat),
    # QuestDB's own SQL
    Row("latest_on() (LATEST ON ... PARTITION BY)", lambda: list(
            Price.objects.latest_on("symbol").order_by("symbol").values_list("symbol", "price")),
        "SELECT symbol, price FROM prices LATEST ON ts PARTITION BY symbol ORDER BY symbol"),
    Row("latest_on() after a filter, two keys", lambda: fields(
            Position.objects.filter(quantity__gt=0).latest_on("session_id", "symbol")
            .order_by("session_id", "symbol"), "session_id", "symbol", "quantity"),
        "SELECT session_id, symbol, quantity FROM positions WHERE quantity > 0"
        " LATEST ON ts PARTITION BY session_id, symbol ORDER BY session_id, symbol"),
    Row("filter() after latest_on(): on the newest rows", lambda: sorted(
            TradingSession.objects.latest_on("session_id").filter(status="active")
            .values_list("session_id", flat=True)),
        "SELECT session_id FROM (SELECT session_id, status FROM trading_sessions"
        " LATEST ON ts PARTITION BY session_id) WHERE status = 'active' ORDER BY 1", (), flat),
    Row("filter(), latest_on(), filter(), exclude(), order and slice", lambda: fields(
            Position.objects.filter(quantity__gt=0).latest_on("session_id", "symbol")
            .filter(quantity__lt=1000).exclude(symbol="AAPL").order_by("-quantity", "symbol")[1:4],
            "symbol", "quantity"),
        "SELECT symbol, quantity FROM (SELECT symbol, quantity FROM positions WHERE quantity > 0"
        " LATEST ON ts PARTITION BY session_id, symbol) WHERE quantity < 1000 AND symbol != 'AAPL'"
        " ORDER BY quantity DESC, symbol LIMIT 1, 4"),
    Row("count() after latest_on().filter()", lambda: TradingSession.objects
            .latest_on("session_id").filter(status="stopped").count(),
        "SELECT count() FROM (SELECT status FROM trading_sessions"
        " LATEST ON ts PARTITION BY session_id) WHERE status = 'stopped'", (), one),
    Row("count() after sample_by()", lambda: Price.objects.filter(symbol__in=["AAPL", "XOM"])
            .sample_by("1h", "symbol", price=Avg("price")).count(),
        "SELECT count() FROM (SELECT symbol, ts, avg(price) FROM prices"
        " WHERE symbol IN ('AAPL', 'XOM') SAMPLE BY 1h ALIGN TO CALENDAR)", (), one),
    Row("sample_by() (SAMPLE BY ... ALIGN TO CALENDAR)", lambda: [
            (r["symbol"], r["ts"], r["avg"]) for r in Price.objects.filter(
                symbol__in=["AAPL", "XOM"]).sample_by("1h", "symbol", avg=Avg("price"))
            .order_by("ts", "symbol")],
        "SELECT symbol, ts, avg(price) FROM prices WHERE symbol IN ('AAPL', 'XOM')"
        " SAMPLE BY 1h ALIGN TO CALENDAR ORDER BY ts, symbol"),
    Row("sample_by() with FILL", lambda: [
            (r["ts"], r["top"]) for r in Tick.objects.filter(ts__year=2024)
            .sample_by("1M", top=Max("qty"), fill="NULL")],
        f"SELECT ts, max(qty) FROM {T} WHERE ts IN '2024' SAMPLE BY 1M FILL(NULL)"
        " ALIGN TO CALENDAR"),
]  # fmt: skip


@pytest.mark.parametrize("row", SUPPORTED, ids=[row.feature for row in SUPPORTED])
def test_supported_row_matches_hand_written_sql(row: Row):
    expected = row.expected()
    assert expected not in ([], (), None, 0, {}), "the hand-written SQL must find something"
    assert row.orm() == expected


UNSUPPORTED = [
    ("correlated Subquery (OuterRef)", lambda: list(Position.objects.annotate(
        last=Subquery(Price.objects.filter(symbol=OuterRef("symbol")).order_by("-ts")
                      .values("price")[:1]))), "latest_on"),
    ("Exists()", lambda: Position.objects.filter(
        Exists(Price.objects.filter(symbol=OuterRef("symbol")))).count(), "__in=Subquery"),
    ("distinct(*fields) (DISTINCT ON)", lambda: list(
        Price.objects.order_by("symbol", "-ts").distinct("symbol")), "latest_on"),
    ("__time", lambda: Tick.objects.filter(ts__time=datetime.time(10)).count(), "ExtractHour"),
    ("TruncTime", lambda: list(Tick.objects.annotate(t=TruncTime("ts"))), "TruncHour"),
    ("delete()", lambda: Tick.objects.filter(name="Alpha").delete(), "QuestDB's own tools"),
    ("delete() on the alias", lambda: Tick.objects.using("questdb").filter(name="Alpha").delete(),
     "DROP PARTITION"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("feature", "orm", "advice"), UNSUPPORTED, ids=[row[0] for row in UNSUPPORTED]
)
def test_unsupported_row_says_so_and_what_to_use(feature, orm, advice):
    with pytest.raises(NotSupportedError, match="QuestDB") as raised:
        orm()
    assert advice in str(raised.value)


def test_unsupported_rows_leave_the_data_alone():
    assert Tick.objects.count() == len(TICKS)  # delete() refused before QuestDB saw it


def test_sample_by_and_latest_on_validate_their_arguments():
    with pytest.raises(ValueError, match="SAMPLE BY interval"):
        Price.objects.sample_by("1h; DROP TABLE prices", price=Avg("price"))
    with pytest.raises(ValueError, match="FILL"):
        Price.objects.sample_by("1h", price=Avg("price"), fill="0); DROP TABLE prices")
    with pytest.raises(TypeError, match="aggregate"):
        Price.objects.sample_by("1h")
    with pytest.raises(TypeError, match="partition"):
        Price.objects.latest_on()
