"""What staff wait for when our own parts are slow or locked, QuestDB healthy: printed only.

Two layouts, each on a fresh gunicorn (one worker, the product's settings):

- Redis: the site's cache, breaker store and copies on a real redis-server
  behind Toxiproxy, every command answered ``--latency`` ms late (300 ms:
  slow, but inside the 1 s socket timeout). Printed: the dashboard page's
  and the API's times, and the Redis commands each request made (Redis's
  own ``INFO commandstats``, less what the process does by itself while
  idle, measured beside it).
- SQLite (the demo): the database cache held under a write lock by another
  process for ``--lock`` seconds (8 s) while staff read the API. Printed:
  each answer's time and status, and its reason.

Run: .venv/bin/python benchmarks/own_faults.py [--latency 300] [--lock 8] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path

import demo_site  # noqa: F401 - first: it sets Django up (test ports)
import redis
from django.conf import settings

from testkit.fleet import API, DASHBOARD, Fleet, request
from testkit.ports import free_port
from testkit.questdb import start_questdb
from testkit.redis_server import RedisServer
from testkit.toxiproxy import Toxiproxy

SECTION = "positions"


def commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def timed(fleet: Fleet, cookie: str, path: str) -> tuple[float, int, dict | None]:
    answer = request(fleet.base_url, path, timeout=30, cookie=cookie)
    body = answer.json() if path.startswith("/api/") and answer.status else None
    return answer.elapsed, answer.status, body


def redis_layout(workdir: Path, latency: int, rounds: int) -> None:
    server = RedisServer(free_port(), workdir)
    server.start()
    proxy_server = Toxiproxy(free_port())
    proxy_server.start()
    proxy = proxy_server.proxy("redis", free_port(), f"127.0.0.1:{server.port}")
    fleet = Fleet(workdir / "site", int(settings.QUESTDB_PORT),
                  f"redis://127.0.0.1:{proxy.port}/0", workers=1,
                  extra_env={"DASHBOARD_FRESH_FOR": str(settings.DASHBOARD_FRESH_FOR)})  # fmt: skip
    direct = redis.Redis(port=server.port)
    try:
        fleet.start()
        cookie = fleet.login()
        for path in (DASHBOARD, API.format(SECTION)):  # warm: copies, connections
            timed(fleet, cookie, path)
        proxy.latency(latency)  # Redis's answers, each `latency` ms late
        time.sleep(1)
        idle_from, idle_start = commands(direct), time.monotonic()
        time.sleep(5)
        idle_rate = (commands(direct) - idle_from) / (time.monotonic() - idle_start)
        for name, path in (("dashboard page", DASHBOARD), ("API", API.format(SECTION))):
            seconds, made = [], []
            for _ in range(rounds):
                time.sleep(2.5)  # the copies are older than DASHBOARD_FRESH_FOR
                before, started = commands(direct), time.monotonic()
                took, status, _ = timed(fleet, cookie, path)
                elapsed = time.monotonic() - started
                seconds.append(took)
                made.append(commands(direct) - before - idle_rate * elapsed)
                assert status == 200, f"{name}: HTTP {status}"
            print(f"Redis +{latency} ms, {name}: median {statistics.median(seconds):.2f} s, "
                  f"max {max(seconds):.2f} s; Redis commands per request: median "
                  f"{statistics.median(made):.0f} (max {max(made):.0f}); "
                  f"idle {idle_rate:.1f}/s")  # fmt: skip
    finally:
        fleet.stop()
        proxy_server.stop()
        server.stop()


def hold_write_lock(database: Path, seconds: float, held: threading.Event) -> None:
    """Another process's long write transaction on the demo's SQLite database."""
    connection = sqlite3.connect(database, timeout=30, isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    held.set()
    time.sleep(seconds)
    connection.execute("ROLLBACK")
    connection.close()


def sqlite_layout(workdir: Path, lock: float, rounds: int) -> None:
    fleet = Fleet(workdir / "demo", int(settings.QUESTDB_PORT), "", workers=1,
                  extra_env={"DASHBOARD_FRESH_FOR": str(settings.DASHBOARD_FRESH_FOR)})  # fmt: skip
    try:
        fleet.start()
        cookie = fleet.login()
        path = API.format(SECTION)
        timed(fleet, cookie, path)
        held = threading.Event()
        locker = threading.Thread(
            target=hold_write_lock, args=(fleet.workdir / "db.sqlite3", lock, held)
        )
        locker.start()
        held.wait()
        answers = []
        ends = time.monotonic() + lock
        while time.monotonic() < ends and len(answers) < rounds * 4:
            time.sleep(2.5)
            answers.append(timed(fleet, cookie, path))
        locker.join()
        worst = max(answers, key=lambda a: a[0])
        median = statistics.median(a[0] for a in answers)
        print(f"SQLite cache locked {lock:g} s, API: worst {worst[0]:.2f} s, "
              f"median {median:.2f} s over {len(answers)}")  # fmt: skip
        for took, status, body in answers:
            body = body or {}
            print(f"  {took:5.2f} s  HTTP {status}  {body.get('status')}: "
                  f"{json.dumps(body.get('reason'))[:160]}")  # fmt: skip
    finally:
        fleet.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--latency", type=int, default=300, help="ms added to each Redis answer")
    parser.add_argument("--lock", type=float, default=8.0, help="seconds the SQLite lock is held")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--layouts", default="redis,sqlite")
    args = parser.parse_args()
    start_questdb(verbosity=0)
    workdir = Path(tempfile.mkdtemp(prefix="own-faults-"))
    try:
        if "redis" in args.layouts:
            redis_layout(workdir, args.latency, args.rounds)
        if "sqlite" in args.layouts:
            sqlite_layout(workdir, args.lock, args.rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
