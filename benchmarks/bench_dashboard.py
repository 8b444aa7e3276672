"""The price of the guard, and what an outage costs a request: printed, not asserted.

Side by side in one run, against a real QuestDB that this script starts:
  1. raw psycopg on one connection (the floor);
  2. the same query through the QuestDB engine (breaker + deadline per statement);
  3. a whole dashboard section through the cached fallback (fresh_for=0: always queries);
  4. the full API request through Django's test client, QuestDB healthy;
  5. the same request with QuestDB stopped and the breaker open (served from the copy).

Run: .venv/bin/python benchmarks/bench_dashboard.py  (QuestDB on the test ports)
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import psycopg
from demo_site import staff_client  # first: it sets Django up
from django.conf import settings
from django.db import connections

from questdash import localdb
from questdash.sections import section
from resilience.breaker import get_breaker

SQL = "SELECT symbol, price, ts FROM prices LATEST ON ts PARTITION BY symbol"
ROUNDS, CALLS = 5, 200


def side_by_side(fns: dict[str, Callable[[], object]], calls: int = CALLS) -> dict[str, float]:
    """Median over rounds of the mean microseconds per call; the rounds of all the
    functions interleave, so drift in QuestDB or the machine touches each alike."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm up: connect, prepare
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            started = time.perf_counter()
            for _ in range(calls):
                fn()
            samples[name].append((time.perf_counter() - started) / calls * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    client = staff_client()

    raw = psycopg.connect(
        host=settings.QUESTDB_HOST, port=settings.QUESTDB_PORT, user=settings.QUESTDB_USER,
        password=settings.QUESTDB_PASSWORD, dbname=settings.QUESTDB_DATABASE, autocommit=True,
    )  # fmt: skip

    def raw_query():
        return raw.execute(SQL).fetchall()

    def engine_query():
        with connections["questdb"].cursor() as cursor:
            cursor.execute(SQL)
            return cursor.fetchall()

    prices = section("latest-prices")

    def api():
        response = client.get("/api/dashboard/latest-prices/")
        assert response.status_code == 200, response.content
        return response

    rows = side_by_side(
        {
            "raw psycopg": raw_query,
            "QuestDB engine (guarded)": engine_query,
            "cached fallback, fresh query": prices.get,
        }
    )
    rows["API request, QuestDB up"] = side_by_side({"api": api}, calls=100)["api"]
    assert api().json()["status"] == "ok"

    localdb.stop()
    while get_breaker("questdb").public_state != "open":
        api()
    rows["API request, QuestDB down, breaker open"] = side_by_side({"api": api}, calls=100)["api"]
    assert api().json()["status"] == "degraded"
    localdb.start()
    get_breaker("questdb").reset()

    print(f"Python {sys.version.split()[0]}, QuestDB {localdb.QUESTDB_VERSION}, "
          f"median of {ROUNDS} rounds, microseconds per call\n")  # fmt: skip
    for name, value in rows.items():
        print(f"{name:<42}{value:>10,.0f}")
    print("\nratios")
    for top, bottom in RATIOS:
        print(f"{top + ' / ' + bottom:<62}{rows[top] / rows[bottom]:>8.2f}x")


RATIOS = [
    ("QuestDB engine (guarded)", "raw psycopg"),
    ("cached fallback, fresh query", "raw psycopg"),
    ("API request, QuestDB down, breaker open", "API request, QuestDB up"),
]


if __name__ == "__main__":
    main()
