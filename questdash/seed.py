"""Demo trading data for QuestDB: schema and rows, relative to now.

Seeding replaces the four demo tables, so running it twice gives the same
data as running it once. QuestDB applies WAL writes asynchronously, so the
loader polls until every row is visible before it returns.
"""

from __future__ import annotations

import datetime
import math
import time
from dataclasses import dataclass

from django.db import connections

from questdash.db.router import QUESTDB_ALIAS

PRICE_INTERVAL_S = 10
PRICE_HOURS = 6

SYMBOLS: dict[str, float] = {
    "AAPL": 231.40, "MSFT": 468.10, "NVDA": 142.75, "AMZN": 212.30,
    "GOOGL": 178.90, "META": 611.20, "TSLA": 344.60, "JPM": 248.15,
    "XOM": 118.40, "BTC-USD": 96250.0, "ETH-USD": 3620.0, "EURUSD": 1.0562,
}  # fmt: skip


@dataclass(frozen=True)
class DemoSession:
    session_id: str
    name: str
    strategy: str
    started_hours_ago: float
    stopped_hours_ago: float | None
    positions: dict[str, float]  # symbol -> signed quantity


SESSIONS = [
    DemoSession("S-1001", "Momentum US large caps", "momentum", 5.5, None,
                {"AAPL": 400, "MSFT": 150, "NVDA": 900, "META": -80}),
    DemoSession("S-1002", "Crypto mean reversion", "mean_reversion", 4.0, None,
                {"BTC-USD": 1.5, "ETH-USD": -12}),
    DemoSession("S-1003", "Pairs: energy vs banks", "pairs", 3.2, None,
                {"XOM": 1200, "JPM": -600}),
    DemoSession("S-0998", "FX carry (paused)", "carry", 5.9, 2.5, {"EURUSD": 250000}),
    DemoSession("S-0997", "Tech breakout (ended)", "breakout", 5.8, 1.0,
                {"TSLA": 300, "AMZN": 200, "GOOGL": -150}),
]  # fmt: skip

TABLES = {
    "trading_sessions": """
        CREATE TABLE trading_sessions (
            session_id SYMBOL, name VARCHAR, strategy SYMBOL, status SYMBOL,
            started_at TIMESTAMP, ts TIMESTAMP
        ) TIMESTAMP(ts) PARTITION BY DAY WAL""",
    "prices": """
        CREATE TABLE prices (symbol SYMBOL, price DOUBLE, ts TIMESTAMP)
        TIMESTAMP(ts) PARTITION BY HOUR WAL""",
    "positions": """
        CREATE TABLE positions (
            session_id SYMBOL, symbol SYMBOL, quantity DOUBLE, avg_price DOUBLE, ts TIMESTAMP
        ) TIMESTAMP(ts) PARTITION BY DAY WAL""",
}


@dataclass(frozen=True)
class SeedResult:
    rows: dict[str, int]
    seconds: float


def price_at(symbol: str, step: int) -> float:
    """A deterministic, market-looking wiggle around the symbol's base price."""
    base = SYMBOLS[symbol]
    phase = sum(map(ord, symbol)) % 17
    drift = 0.018 * math.sin((step + phase * 97) / (140.0 + phase * 11))
    swing = 0.006 * math.sin((step + phase * 7) / (19.0 + phase)) + 0.003 * math.sin(
        step / 5.0 + phase
    )
    return round(base * (1 + drift + swing), 6 if base < 10 else 2)


def seed(now: datetime.datetime | None = None, timeout: float = 60.0) -> SeedResult:
    started = time.monotonic()
    now = (now or datetime.datetime.now(datetime.UTC)).replace(microsecond=0, tzinfo=None)
    steps = PRICE_HOURS * 3600 // PRICE_INTERVAL_S
    first = now - datetime.timedelta(seconds=steps * PRICE_INTERVAL_S)
    expected = {
        "trading_sessions": len(SESSIONS) + sum(s.stopped_hours_ago is not None for s in SESSIONS),
        "prices": steps * len(SYMBOLS),
        "positions": 2 * sum(len(s.positions) for s in SESSIONS),
    }
    with connections[QUESTDB_ALIAS].cursor() as cursor:
        for table, ddl in TABLES.items():
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute(ddl)
        prices = [
            (
                symbol,
                price_at(symbol, step),
                first + datetime.timedelta(seconds=step * PRICE_INTERVAL_S),
            )
            for symbol in SYMBOLS
            for step in range(1, steps + 1)
        ]
        _insert(cursor, "prices", ["symbol", "price", "ts"], prices)
        _insert(
            cursor,
            "trading_sessions",
            ["session_id", "name", "strategy", "status", "started_at", "ts"],
            _session_rows(now),
        )
        _insert(
            cursor,
            "positions",
            ["session_id", "symbol", "quantity", "avg_price", "ts"],
            _position_rows(now, first, steps),
        )
        _wait_for_rows(cursor, expected, timeout)
    return SeedResult(rows=expected, seconds=time.monotonic() - started)


def _insert(cursor, table: str, columns: list[str], rows: list[tuple]) -> None:
    """executemany with server-side binding pipelines the rows: 26k rows in half a second."""
    placeholders = ", ".join(["%s"] * len(columns))
    cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows)


def _session_rows(now: datetime.datetime) -> list[tuple]:
    rows = []
    for s in SESSIONS:
        started_at = now - datetime.timedelta(hours=s.started_hours_ago)
        rows.append((s.session_id, s.name, s.strategy, "active", started_at, started_at))
        if s.stopped_hours_ago is not None:
            stopped_at = now - datetime.timedelta(hours=s.stopped_hours_ago)
            rows.append((s.session_id, s.name, s.strategy, "stopped", started_at, stopped_at))
    return rows


def _position_rows(now: datetime.datetime, first: datetime.datetime, steps: int) -> list[tuple]:
    """Each position is opened at half size, then topped up: LATEST ON picks the second."""
    rows = []
    for s in SESSIONS:
        opened = now - datetime.timedelta(hours=s.started_hours_ago) + datetime.timedelta(minutes=5)
        for i, (symbol, quantity) in enumerate(s.positions.items()):
            for fraction, offset in ((0.5, 0), (1.0, 40 + i)):
                at = opened + datetime.timedelta(minutes=offset)
                step = max(1, int((at - first).total_seconds()) // PRICE_INTERVAL_S)
                rows.append((s.session_id, symbol, quantity * fraction, price_at(symbol, step), at))
    return rows


def _wait_for_rows(cursor, expected: dict[str, int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        counts = {}
        for table in expected:
            cursor.execute(f"SELECT count() FROM {table}")
            counts[table] = cursor.fetchone()[0]
        if counts == expected:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"QuestDB applied {counts} of {expected} rows in {timeout:.0f} s")
        time.sleep(0.1)
