"""The dashboard's reads from QuestDB: the four of the story, plus the chart.

All SQL is parameterised and runs on the "questdb" alias, whose engine
passes every connect and query through the circuit breaker and retry.
Rows come back as plain dicts of JSON-friendly values, ready for the
cached fallback and the API.

QuestDB hands back what it holds: NULLs, empty strings, NaN and extremes.
Each read keeps only the rows it can show (``_renderable``: a price needs
its symbol, a chart point its time and price), so the fallback never stores
a copy the page cannot render; a NULL elsewhere stays None (the page shows a
dash), and a number that is not finite becomes None (JSON has no NaN).
"""

from __future__ import annotations

import datetime
import logging
import math
from typing import Any

from django.conf import settings
from django.db import connections

from questdash.db.backend.operations import as_utc
from questdash.db.router import QUESTDB_ALIAS
from resilience.logs import Summary

logger = logging.getLogger("questdash.dashboard")
# Bad rows come back on every read until someone fixes them: a line per read, reason and
# minute, and the reads in between at DEBUG.
_summary = Summary(logger)

Row = dict[str, Any]


def finite(value: Any) -> Any:
    """``value``, except a float that is NaN or infinite: None."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def present(value: Any) -> bool:
    """Neither NULL nor an empty string."""
    return value is not None and value != ""


def _query(sql: str, params: list | tuple = ()) -> list[Row]:
    with connections[QUESTDB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        columns = [col.name for col in cursor.description]
        return [
            {column: finite(as_utc(value)) for column, value in zip(columns, row, strict=True)}
            for row in cursor.fetchall()
        ]


def _renderable(rows: list[Row], read: str, *required: str) -> list[Row]:
    """The rows with every ``required`` value present; the rest are logged and left out."""
    kept = [row for row in rows if all(present(row[key]) for key in required)]
    if dropped := len(rows) - len(kept):
        reason = f"NULL or empty {' or '.join(required)}"
        _summary.note((read, reason), logging.WARNING, "questdash.dashboard.rows_dropped",
                      read=read, dropped=dropped, kept=len(kept), reason=reason)  # fmt: skip
    return kept


def _placeholders(values: list) -> str:
    return ", ".join(["%s"] * len(values))


def get_active_sessions(limit: int | None = None) -> list[Row]:
    """Sessions whose newest lifecycle row says active, newest first, with their symbols."""
    limit = limit or settings.DASHBOARD_ACTIVE_SESSIONS_LIMIT
    sessions = _renderable(_query(
        "SELECT session_id, name, strategy, started_at FROM ("
        "  SELECT session_id, name, strategy, status, started_at, ts FROM trading_sessions"
        "  LATEST ON ts PARTITION BY session_id"
        ") WHERE status = %s ORDER BY started_at DESC LIMIT %s",
        ["active", limit],
    ), "active_sessions", "session_id")  # fmt: skip
    symbols = get_session_symbols([s["session_id"] for s in sessions])
    for session in sessions:
        session["symbols"] = symbols.get(session["session_id"], [])
    return sessions


def get_session_symbols(session_ids: list[str]) -> dict[str, list[str]]:
    """The symbols each session holds a position in."""
    if not session_ids:
        return {}
    rows = _query(
        "SELECT session_id, symbol FROM positions"
        f" WHERE session_id IN ({_placeholders(session_ids)})"
        " LATEST ON ts PARTITION BY session_id, symbol",
        session_ids,
    )
    symbols: dict[str, list[str]] = {}
    for row in rows:
        if present(row["session_id"]) and present(row["symbol"]):
            symbols.setdefault(row["session_id"], []).append(row["symbol"])
    return {session_id: sorted(found) for session_id, found in symbols.items()}


def get_latest_prices(symbols: list[str] | None = None) -> list[Row]:
    """The newest price of each symbol (of the given ones, or of all)."""
    where, params = "", []
    if symbols:
        where, params = f" WHERE symbol IN ({_placeholders(symbols)})", list(symbols)
    rows = _query(
        f"SELECT symbol, price, ts FROM prices{where} LATEST ON ts PARTITION BY symbol"
        " ORDER BY symbol",
        params,
    )
    return _renderable(rows, "latest_prices", "symbol")


def get_positions(limit: int | None = None) -> list[Row]:
    """Open positions of all sessions with the last price and unrealized P&L."""
    limit = limit or settings.DASHBOARD_POSITIONS_LIMIT
    positions = _renderable(_query(
        "SELECT session_id, symbol, quantity, avg_price, ts FROM ("
        "  SELECT session_id, symbol, quantity, avg_price, ts FROM positions"
        "  LATEST ON ts PARTITION BY session_id, symbol"
        ") WHERE quantity != 0 ORDER BY session_id, symbol LIMIT %s",
        [limit],
    ), "positions", "session_id", "symbol")  # fmt: skip
    last = {
        p["symbol"]: p["price"] for p in get_latest_prices(sorted({p["symbol"] for p in positions}))
    }
    for position in positions:
        price = last.get(position["symbol"])
        position["last_price"] = price
        position["unrealized_pnl"] = unrealized_pnl(
            price, position["avg_price"], position["quantity"]
        )
    return positions


def unrealized_pnl(
    price: float | None, avg_price: float | None, quantity: float | None
) -> float | None:
    """(last - average) x quantity, to the cent; None when a part is missing or it overflows."""
    if price is None or avg_price is None or quantity is None:
        return None
    return finite(round((price - avg_price) * quantity, 2))


def get_price_history(minutes: int | None = None) -> list[Row]:
    """Per-symbol averages over recent buckets, for the dashboard's chart."""
    minutes = minutes or settings.DASHBOARD_CHART_MINUTES
    since = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(
        minutes=minutes
    )
    rows = _query(
        "SELECT symbol, ts, avg(price) AS price FROM prices WHERE ts >= %s"
        " SAMPLE BY 5m ALIGN TO CALENDAR ORDER BY symbol, ts",
        [since],
    )
    return _renderable(rows, "price_history", "symbol", "ts", "price")
