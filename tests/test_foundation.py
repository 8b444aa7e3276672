"""The site on a real QuestDB: the engine, the router and the four reads."""

from __future__ import annotations

import datetime

import psycopg
import pytest
from django.conf import settings
from django.db import connections
from django.db.backends.postgresql.base import DatabaseWrapper as StockPostgres
from django.db.utils import NotSupportedError

from questdash import dashboard, localdb, seed
from questdash.db.router import QuestDBRouter
from questdash.models import Position, Price, TradingSession

pytestmark = [pytest.mark.usefixtures("questdb_server"), pytest.mark.django_db(databases="__all__")]


def test_stock_postgresql_engine_refuses_questdb_and_ours_works():
    stock = StockPostgres(
        {**settings.DATABASES["questdb"], "ENGINE": "django.db.backends.postgresql"}, alias="stock"
    )
    try:
        with pytest.raises(NotSupportedError, match="PostgreSQL 14 or later is required"):
            stock.ensure_connection()
    finally:
        stock.close()
    with connections["questdb"].cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert connections["questdb"].display_name == "QuestDB"


def test_stock_engine_without_version_gate_still_sends_set_config():
    class NoGate(StockPostgres):
        def check_database_version_supported(self):
            pass

    stock = NoGate(
        {**settings.DATABASES["questdb"], "ENGINE": "django.db.backends.postgresql"}, alias="stock"
    )
    try:
        with pytest.raises(Exception, match="set_config"):
            stock.ensure_connection()
    finally:
        stock.close()


def test_active_sessions_are_the_seeded_active_ones_with_their_symbols():
    sessions = dashboard.get_active_sessions()
    expected = [s for s in seed.SESSIONS if s.stopped_hours_ago is None]
    assert [s["session_id"] for s in sessions] == [
        s.session_id for s in sorted(expected, key=lambda s: s.started_hours_ago)
    ]
    by_id = {s["session_id"]: s for s in sessions}
    for demo in expected:
        assert by_id[demo.session_id]["symbols"] == sorted(demo.positions)
        assert by_id[demo.session_id]["name"] == demo.name
        assert by_id[demo.session_id]["started_at"].tzinfo is not None


def test_active_sessions_limit_is_a_setting(settings):
    settings.DASHBOARD_ACTIVE_SESSIONS_LIMIT = 2
    assert len(dashboard.get_active_sessions()) == 2


def test_session_symbols_helper():
    assert dashboard.get_session_symbols(["S-1002"]) == {"S-1002": ["BTC-USD", "ETH-USD"]}
    assert dashboard.get_session_symbols([]) == {}


def test_latest_prices_one_per_symbol_and_newest():
    prices = dashboard.get_latest_prices()
    assert [p["symbol"] for p in prices] == sorted(seed.SYMBOLS)
    newest = max(p["ts"] for p in prices)
    assert datetime.datetime.now(datetime.UTC) - newest < datetime.timedelta(hours=1)
    aapl = Price.objects.filter(symbol="AAPL").order_by("-ts").first()
    assert {"symbol": "AAPL", "price": aapl.price, "ts": aapl.ts} in prices


def test_positions_have_last_price_and_unrealized_pnl():
    positions = dashboard.get_positions()
    assert len(positions) == sum(len(s.positions) for s in seed.SESSIONS)
    prices = {p["symbol"]: p["price"] for p in dashboard.get_latest_prices()}
    for p in positions:
        demo = next(s for s in seed.SESSIONS if s.session_id == p["session_id"])
        assert p["quantity"] == demo.positions[p["symbol"]]  # the top-up, not the first half
        assert p["last_price"] == prices[p["symbol"]]
        assert p["unrealized_pnl"] == round((p["last_price"] - p["avg_price"]) * p["quantity"], 2)


def test_price_history_buckets_recent_prices():
    history = dashboard.get_price_history(minutes=60)
    assert {row["symbol"] for row in history} == set(seed.SYMBOLS)
    assert 12 * 12 <= len(history) <= 12 * 14  # 5-minute buckets over an hour


def test_orm_reads_route_to_questdb_and_never_migrate():
    assert TradingSession.objects.filter(status="stopped").count() == 2
    assert Position.objects.db == "questdb"
    router = QuestDBRouter()
    assert router.db_for_read(Price) == "questdb"
    assert router.allow_migrate("questdb", "auth") is False
    assert router.allow_migrate("default", "questdash", model=Price) is False
    assert router.allow_migrate("default", "auth") is None


def test_seed_is_idempotent():
    before = Price.objects.count()
    result = seed.seed()
    assert result.rows["prices"] == before == Price.objects.count()


def test_start_is_idempotent():
    status = localdb.status()
    assert status.running and status.pid
    assert localdb.start().pid == status.pid  # already running: same process
    assert str(status).startswith(f"QuestDB {localdb.QUESTDB_VERSION} is running")


def test_questdb_server_conf_holds_ports_and_no_telemetry():
    conf = localdb.server_conf()
    assert f"pg.net.bind.to=127.0.0.1:{settings.QUESTDB_PORT}" in conf
    assert "telemetry.enabled=false" in conf


def test_password_is_really_checked():
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            host="127.0.0.1",
            port=settings.QUESTDB_PORT,
            user="admin",
            password="wrong",
            dbname="qdb",
            connect_timeout=2,
        ).close()
