"""Bad data from QuestDB (issue 10, items 4 and 5), on the real server.

The demo tables get rows with NULLs, empty strings, non-ASCII and extreme
numbers, as the newest rows so that every read meets them. Every read, the
API, the page and the chart must cope: rows that cannot be shown are left
out (and never stored as the last good copy), the other NULLs show as a dash.
Writes through the QuestDB models are refused before any SQL is sent.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import time

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from questdash import dashboard, seed
from questdash.chart import price_chart
from questdash.db import router
from questdash.models import Position, Price, TradingSession
from questdash.sections import LOADERS, section
from resilience.fallback import KEY_PREFIX, read_copy
from resilience.registry import get_breaker

pytestmark = [
    pytest.mark.usefixtures("questdb_server", "fresh_state"),
    pytest.mark.django_db(databases=["default", "questdb"]),
]

HUGE = 1.7976931348623157e308
LONG_NAME = "Ünïcødé " * 300
# What each read needs to show a row; rows without it are left out.
REQUIRED = {
    "active-sessions": ("session_id",),
    "latest-prices": ("symbol",),
    "positions": ("session_id", "symbol"),
    "price-history": ("symbol", "ts", "price"),
}


def bad_rows(now: datetime.datetime) -> dict[str, list[tuple]]:
    earlier = now - datetime.timedelta(minutes=6)
    return {
        "prices (symbol, price, ts)": [
            (None, 1.5, now), ("", 2.5, now), ("NULLPX", None, now), ("HUGE", HUGE, now),
            ("NEGHUGE", -HUGE, now), ("TINY", 5e-324, now), ("ÜBER€", 3.0, now),
            ("ZERO", 0.0, earlier), ("ZERO", 5.0, now),
            ("SWING", 1e-300, earlier), ("SWING", 1e300, now),
        ],
        "positions (session_id, symbol, quantity, avg_price, ts)": [
            ("S-1001", "AAPL", 10.0, None, now),  # NULL avg_price: no P&L, not an error
            ("S-1001", None, 5.0, 1.0, now),  # NULL symbol: left out, and not a session symbol
            ("S-1002", "BTC-USD", None, 100.0, now),  # NULL quantity
            ("S-1003", "HUGE", HUGE, -HUGE, now),  # P&L overflows to infinity
            (None, "MSFT", 1.0, 1.0, now),  # NULL session: left out
            ("", "MSFT", 1.0, 1.0, now),  # empty session: left out
        ],
        "trading_sessions (session_id, name, strategy, status, started_at, ts)": [
            ("S-NULLS", None, None, "active", None, now),
            ("S-EMPTY", "", "", "active", now, now),
            ("S-LONG", LONG_NAME, "momentum", "active", now, now),
            (None, "no id", "x", "active", now, now),
        ],
    }  # fmt: skip


@pytest.fixture(scope="module")
def hostile_tables(questdb_server, django_db_blocker):
    """The bad rows added to the seeded tables; the seed is restored afterwards."""
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    rows = bad_rows(now)
    with django_db_blocker.unblock():
        with connections["questdb"].cursor() as cursor:
            for target, values in rows.items():
                marks = ", ".join(["%s"] * len(values[0]))
                cursor.executemany(f"INSERT INTO {target} VALUES ({marks})", values)
            deadline = time.monotonic() + 30
            for target, values in rows.items():  # WAL tables apply rows asynchronously
                table = target.split()[0]
                while True:
                    cursor.execute(f"SELECT count() FROM {table} WHERE ts >= %s", [now])
                    if cursor.fetchone()[0] >= sum(v[-1] >= now for v in values):
                        break
                    assert time.monotonic() < deadline, f"rows never showed in {table}"
                    time.sleep(0.1)
        yield now
        seed.seed()


@pytest.fixture
def viewer(django_user_model) -> Client:
    user = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_dashboard", "view_circuitbreaker"])
    )
    client = Client()
    client.force_login(user)
    return client


def strict_json(text: str):
    """JSON as a browser parses it: NaN and Infinity are errors."""

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_every_read_keeps_only_renderable_rows(hostile_tables):
    for slug, loader in LOADERS.items():
        rows = loader()
        assert rows, slug
        for row in rows:
            for key in REQUIRED[slug]:
                assert row[key] not in (None, ""), (slug, row)
            for value in row.values():
                assert not (isinstance(value, float) and not math.isfinite(value)), (slug, row)
    sessions = {s["session_id"]: s for s in dashboard.get_active_sessions()}
    assert sessions["S-NULLS"]["name"] is None and sessions["S-NULLS"]["started_at"] is None
    assert sessions["S-LONG"]["name"] == LONG_NAME
    assert sessions["S-1001"]["symbols"] == sorted(seed.SESSIONS[0].positions)  # no NULL symbol
    prices = {p["symbol"]: p["price"] for p in dashboard.get_latest_prices()}
    assert prices["NULLPX"] is None and prices["HUGE"] == HUGE and "ÜBER€" in prices
    positions = {(p["session_id"], p["symbol"]): p for p in dashboard.get_positions()}
    assert positions[("S-1001", "AAPL")]["unrealized_pnl"] is None  # NULL avg_price
    assert positions[("S-1002", "BTC-USD")]["unrealized_pnl"] is None  # NULL quantity
    assert positions[("S-1003", "HUGE")]["unrealized_pnl"] is None  # overflow
    history = dashboard.get_price_history()
    assert "NULLPX" not in {row["symbol"] for row in history}  # its only bucket is NULL


def test_api_serves_every_section_fresh_as_strict_json_and_stores_a_clean_copy(
    hostile_tables, viewer
):
    for slug in LOADERS:
        response = viewer.get(f"/api/dashboard/{slug}/")
        body = strict_json(response.content.decode())
        assert response.status_code == 200, (slug, body)
        assert body["status"] == "ok", (slug, body["reason"])  # never a query_error
        copy = read_copy(section(slug).name)
        assert copy is not None and copy.data
        for row in copy.data:
            assert all(row[key] not in (None, "") for key in REQUIRED[slug]), (slug, row)


def test_the_page_renders_nulls_as_dashes(hostile_tables, viewer):
    response = viewer.get("/admin/questdash/dashboard/")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count("pill status-ok") == len(LOADERS)
    assert "<td>None</td>" not in html and ">None<" not in html
    row = re.search(r"<tr><td>S-NULLS</td>(.*?)</tr>", html).group(1)
    assert row.count("<td>—</td>") == 4  # name, strategy, started, symbols
    assert re.search(r"<td>NULLPX</td><td class=\"num\">—</td>", html)
    assert LONG_NAME.strip() in html
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert not re.search(r"\bnan\b|\binf\b", svg.lower()), "the chart holds no NaN or infinity"


def test_copies_stored_before_the_fix_still_render(viewer):
    """Old copies may hold any row: the page serves them with dashes, never a 500."""
    now = datetime.datetime.now(datetime.UTC)
    hostile = [
        {"symbol": None, "ts": now, "price": 1.0, "session_id": None, "name": None},
        {"symbol": "A", "ts": None, "price": None, "quantity": None, "avg_price": None},
        {"symbol": "B", "ts": now, "price": math.nan, "unrealized_pnl": math.inf},
        {"symbol": "C", "ts": now, "price": "not a number", "started_at": "yesterday"},
        {"symbol": "D", "ts": now - datetime.timedelta(minutes=5), "price": 0.0},
        {"symbol": "D", "ts": now, "price": 2.0},
        {},
    ]
    for slug in LOADERS:
        cache.set(KEY_PREFIX + section(slug).name, {"data": hostile, "cached_at": now}, None)
    get_breaker("questdb").force_open()
    try:
        response = viewer.get("/admin/questdash/dashboard/")
    finally:
        get_breaker("questdb").reset()
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count("pill status-degraded") == len(LOADERS)
    assert "—" in html and ">None<" not in html and ">nan<" not in html.lower()


NOW = datetime.datetime.now(datetime.UTC)
DAY_1 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
DAY_2 = DAY_1 + datetime.timedelta(days=1)


@pytest.mark.parametrize(
    "rows",
    [
        [{"symbol": "X", "ts": None, "price": 1.0}],
        [{"symbol": None, "ts": NOW, "price": 1.0}, {"symbol": "A", "ts": NOW, "price": 1.0}],
        [{"symbol": "X", "ts": NOW, "price": None}],
        [{"symbol": "X", "ts": NOW, "price": math.nan}],
        [{"symbol": "X", "ts": NOW, "price": 0.0}],
        [
            {"symbol": "X", "ts": DAY_1, "price": 5e-324},
            {"symbol": "X", "ts": DAY_2, "price": HUGE},
            {"symbol": "Y", "ts": DAY_1, "price": HUGE},
            {"symbol": "Y", "ts": DAY_2, "price": -HUGE},
        ],
    ],
    ids=["null-ts", "null-symbol", "null-price", "nan-price", "zero-first", "extremes"],
)
def test_chart_never_fails_nor_draws_nan(rows):
    svg = str(price_chart(rows))
    assert not re.search(r"\bnan\b|\binf\b", svg.lower()), svg


# --- item 5: writes through the QuestDB models are refused -------------------------------------


def test_writes_to_questdb_models_are_refused_before_any_sql():
    now = datetime.datetime.now(datetime.UTC)
    before = Price.objects.count()
    price = Price.objects.filter(symbol="AAPL").first()
    attempts = {
        "create": lambda: Price.objects.create(symbol="EVIL", price=1.0, ts=now),
        "bulk_create": lambda: Price.objects.bulk_create([Price(symbol="EVIL", price=1.0, ts=now)]),
        "save": lambda: Price(symbol="EVIL", price=1.0, ts=now).save(),
        "update": lambda: Price.objects.filter(symbol="AAPL").update(price=0.0),
        "delete": lambda: Price.objects.filter(symbol="AAPL").delete(),
        "instance delete": lambda: price.delete(),
        "get_or_create": lambda: TradingSession.objects.get_or_create(session_id="EVIL", ts=now),
        "position": lambda: Position.objects.create(
            session_id="S", symbol="X", quantity=1.0, avg_price=1.0, ts=now
        ),
    }  # fmt: skip
    with CaptureQueriesContext(connections["questdb"]) as queries:
        for name, attempt in attempts.items():
            with pytest.raises(
                router.ReadOnlyModelError, match=r"questdash\.\w+ is read-only"
            ) as info:
                attempt()
            assert "QuestDB" in str(info.value), name
    assert not [q["sql"] for q in queries if not q["sql"].lstrip().upper().startswith("SELECT")]
    assert Price.objects.count() == before  # reads still work, nothing was written
    assert not Price.objects.filter(symbol="EVIL").exists()
