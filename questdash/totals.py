"""Unrealized P&L summed per session and overall: the positions table's footer.

A position without a P&L (no last price, an average missing, a value that
overflowed) cannot be added in. Its session's total, and the overall one,
say how many positions were left out rather than show a smaller number as if
it were whole; a total of nothing is None (the page shows a dash). The rows
may come from an old copy, so nothing here trusts their shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .dashboard import finite, present


@dataclass(frozen=True)
class Total:
    label: str  # a session id, or "All sessions"
    pnl: float | None  # to the cent; None when no position of it had a P&L, or the sum overflowed
    positions: int
    missing: int  # positions whose P&L is unknown, left out of ``pnl``


@dataclass(frozen=True)
class Totals:
    sessions: list[Total]  # in the order the rows name them
    overall: Total


def pnl_totals(rows: list[dict[str, Any]]) -> Totals:
    by_session: dict[str, list[Any]] = {}
    for row in rows:
        if isinstance(row, dict) and present(row.get("session_id")):
            by_session.setdefault(str(row["session_id"]), []).append(row.get("unrealized_pnl"))
    sessions = [_total(session_id, values) for session_id, values in by_session.items()]
    everything = [value for values in by_session.values() for value in values]
    return Totals(sessions=sessions, overall=_total("All sessions", everything))


def _total(label: str, values: list[Any]) -> Total:
    known = [float(v) for v in values if _number(v)]
    try:
        pnl = finite(round(math.fsum(known), 2)) if known else None
    except OverflowError:  # fsum of values near the float limit
        pnl = None
    return Total(label=label, pnl=pnl, positions=len(values), missing=len(values) - len(known))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
