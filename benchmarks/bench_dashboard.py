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

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("DJANGO_LOG_LEVEL", "CRITICAL")

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from questdash import localdb  # noqa: E402
from questdash.sections import section  # noqa: E402
from resilience.breaker import get_breaker  # noqa: E402

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
    settings.DASHBOARD_FRESH_FOR = 0
    localdb.fetch()
    call_command("questdb", "start")  # also closes a breaker an earlier run left open
    call_command("questdb", "seed")
    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    setup_test_environment()
    user, _ = get_user_model().objects.get_or_create(username="bench", is_staff=True)
    client = Client()
    client.force_login(user)

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
