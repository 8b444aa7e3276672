"""What the guard adds to one statement: printed, not asserted (issue 11, item 5).

Each statement runs three ways on the same QuestDB connection (the
"questdb" alias's psycopg connection, the same prepared statements):

  1. raw psycopg: a cursor of that connection;
  2. Django's stock cursor: ``CursorWrapper`` around the same psycopg cursor
     (what Django's postgresql backend gives, execute wrappers included);
  3. the QuestDB engine's guarded cursor, alone (one guarded call per
     statement: breaker, deadline, watchdog) and nested inside an operation's
     guard, as the dashboard's reads run it (the operation counts; each
     statement only gets its deadline and watchdog).

Two statements: ``SELECT 1`` (the fixed cost, nothing else) and the
dashboard's typical query (the latest price of each symbol). Rounds
interleave the ways in a rotating order so that drift in QuestDB or the
machine touches each alike; each figure is the median over rounds of the
mean per call, and the added cost is the median of the per-round
differences. The whole measurement is repeated ``--runs`` times: the spread
between runs says how far to trust it.

Run: .venv/bin/python benchmarks/bench_dashboard.py [--rounds 40] [--calls 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

from demo_site import staff_client  # first: it sets Django up
from django.db import connections
from django.db.backends.utils import CursorWrapper

from questdash import localdb
from questdash.db.guard import questdb_call

STATEMENTS = {
    "SELECT 1": "SELECT 1",
    "latest prices": "SELECT symbol, price, ts FROM prices LATEST ON ts PARTITION BY symbol"
    " ORDER BY symbol",
}
WAYS = ["raw psycopg", "Django stock cursor", "guarded, alone", "guarded, nested"]


def ways(sql: str) -> dict[str, Callable[[], object]]:
    db = connections["questdb"]
    db.ensure_connection()
    pg = db.connection

    def raw() -> object:
        with pg.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()

    def stock() -> object:
        db.ensure_connection()
        with CursorWrapper(db.create_cursor(), db) as cursor:
            cursor.execute(sql)
            return cursor.fetchall()

    def guarded() -> object:
        with db.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()

    return {WAYS[0]: raw, WAYS[1]: stock, WAYS[2]: guarded, "nested": guarded}


def measure(sql: str, rounds: int, calls: int) -> dict[str, list[float]]:
    """Microseconds per call, one figure per round for each way."""
    fns = ways(sql)
    nested = fns.pop("nested")
    samples: dict[str, list[float]] = {n: [] for name in WAYS for n in (name, f"{name}, CPU")}
    for fn in fns.values():
        for _ in range(20):  # warm up: connect, prepare (prepare_threshold)
            fn()

    def timed(fn: Callable[[], object]) -> tuple[float, float]:
        started, cpu = time.perf_counter(), time.thread_time()
        for _ in range(calls):
            fn()
        return (
            (time.perf_counter() - started) / calls * 1e6,
            (time.thread_time() - cpu) / calls * 1e6,
        )

    def inside_one_operation() -> tuple[float, float]:
        return questdb_call("bench", lambda: timed(nested), retry=False)

    order = [*fns.items(), (WAYS[3], inside_one_operation)]
    for i in range(rounds):
        turn = order[i % len(order) :] + order[: i % len(order)]
        for name, fn in turn:
            wall, cpu = fn() if name == WAYS[3] else timed(fn)
            samples[name].append(wall)
            samples[f"{name}, CPU"].append(cpu)
    return samples


def summary(samples: dict[str, list[float]]) -> dict[str, float]:
    def paired(top: str, bottom: str, op: Callable[[float, float], float]) -> float:
        """The median of the per-round comparisons: drift between rounds cancels out."""
        return statistics.median(map(op, samples[top], samples[bottom]))

    result = {name: statistics.median(values) for name, values in samples.items()}
    for name in WAYS[2:]:
        result[f"{name} - stock, CPU"] = paired(f"{name}, CPU", f"{WAYS[1]}, CPU", float.__sub__)
        result[f"{name} - stock"] = paired(name, WAYS[1], float.__sub__)
        result[f"{name} / stock"] = paired(name, WAYS[1], float.__truediv__)
        result[f"{name} / raw"] = paired(name, WAYS[0], float.__truediv__)
    result["stock - raw, CPU"] = paired(f"{WAYS[1]}, CPU", f"{WAYS[0]}, CPU", float.__sub__)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--calls", type=int, default=100, help="statements per way and round")
    parser.add_argument("--runs", type=int, default=3, help="repetitions, to see the spread")
    args = parser.parse_args()
    staff_client()  # QuestDB up and seeded, the tables made

    results = {label: [] for label in STATEMENTS}
    load = [os.getloadavg()[0]]
    for run in range(args.runs):
        for label, sql in STATEMENTS.items():
            print(f"run {run + 1}: {label} ...", file=sys.stderr, flush=True)
            results[label].append(summary(measure(sql, args.rounds, args.calls)))
        load.append(os.getloadavg()[0])

    print(f"Python {sys.version.split()[0]}, QuestDB {localdb.QUESTDB_VERSION}, one connection; "
          f"{args.rounds} interleaved rounds of {args.calls} calls per way, {args.runs} runs; "
          f"1-min load average {min(load):.1f} to {max(load):.1f} (2 cores)\n")  # fmt: skip
    keys = [
        *WAYS, *(f"{w}, CPU" for w in WAYS),
        *(f"{w} - stock, CPU" for w in WAYS[2:]), "stock - raw, CPU",
        *(f"{w} - stock" for w in WAYS[2:]),
        *(f"{w} / {b}" for w in WAYS[2:] for b in ("stock", "raw")),
    ]  # fmt: skip
    for label in STATEMENTS:
        runs = results[label]
        print(f"{label}: microseconds per statement, wall clock unless CPU (this thread's "
              "time: what the client adds, without the wait for QuestDB); each run, and "
              "spread = (max - min) / median")  # fmt: skip
        for key in keys:
            values = [r[key] for r in runs]
            middle = statistics.median(values)
            spread = (max(values) - min(values)) / abs(middle) if middle else 0.0
            unit = "x" if " / " in key else " us"
            shown = "  ".join(f"{v:>8.2f}" if unit == "x" else f"{v:>8.1f}" for v in values)
            print(f"  {key:<36}{shown}{unit}   spread {spread:>5.1%}")
        print()


if __name__ == "__main__":
    main()
