"""What N open dashboards cost the fleet: printed, not asserted (issue 18).

gunicorn serves the site (2 workers, the product's gunicorn.conf.py and
settings, the product's DASHBOARD_FRESH_FOR and refresh interval) while N
simulated staff keep the dashboard open, each on its own thread with its
own session cookie from a real login, doing exactly what the page does:

- ``live``: dashboard.js: ``live/?state=<digest>`` every second, and
  ``live/`` (every part) every refresh interval (15 s);
- ``hidden``: the same page in a background tab: ``live/`` every interval only;
- ``reload``: the old page: the whole page every refresh interval (its meta
  refresh), as every browser without JavaScript still does.

Each mode runs side by side on the same server, staggered as real tabs are
(each starts at a random point of its second and interval). Printed per mode:
requests per second to the fleet; QuestDB statements per second (the fleet's
own /metrics: ``resilience_query_duration_seconds_count`` on the questdb
alias, every worker added up); gunicorn's CPU (its workers' user+system
seconds over wall seconds, 1.00 = one core); p50 and p99 latency; then each
mode's figures as a ratio of ``reload``'s. No Celery beat runs: its refresh
of the four sections every interval comes on top, whatever staff do.

Run: .venv/bin/python benchmarks/open_dashboards.py [--dashboards 50] [--seconds 45]
     [--rounds 3] [--configs demo,redis]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import demo_site  # noqa: F401 - first: it sets Django up (test ports)
from django.conf import settings
from django.core.management import call_command

from questdash import localdb
from testkit.fleet import DASHBOARD, Fleet, request
from testkit.ports import free_port
from testkit.redis_server import RedisServer

WORKERS = 2
REFRESH = 15.0  # DASHBOARD_REFRESH_INTERVAL's default
PULSE = 1.0  # dashboard.js asks for the state this often
LIVE = DASHBOARD + "live/"
METRICS_TOKEN = secrets.token_urlsafe(24)
STATEMENTS = re.compile(
    r'^resilience_query_duration_seconds_count\{[^}]*database="questdb"[^}]*\} ([\d.e+]+)$', re.M
)


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    bad: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float, ok: bool) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.bad += not ok


@dataclass
class Result:
    rps: float
    statements: float  # QuestDB statements per second
    cpu: float  # gunicorn's cores busy
    p50: float  # ms
    p99: float
    bad: int


def tab(base: str, cookie: str, mode: str, stop: threading.Event, tally: Tally) -> None:
    """One open dashboard, as its page would behave in ``mode``."""

    def get(path: str) -> dict | None:
        answer = request(base, path, timeout=10, cookie=cookie)
        tally.add(answer.elapsed, answer.status == 200)
        try:
            return json.loads(answer.body) if path.startswith(LIVE) else None
        except ValueError:
            return None

    state, last_full = "", time.monotonic() - random.uniform(0, REFRESH)
    stop.wait(random.uniform(0, PULSE))
    while not stop.is_set():
        now = time.monotonic()
        if mode == "reload":
            if now - last_full >= REFRESH:
                get(DASHBOARD)
                last_full = now
        elif now - last_full >= REFRESH:
            answer = get(LIVE)
            state, last_full = (answer or {}).get("state", ""), now
        elif mode == "live":
            answer = get(f"{LIVE}?{urllib.parse.urlencode({'state': state})}")
            state = (answer or {}).get("state", state)
        stop.wait(PULSE - (time.monotonic() - now) % PULSE)


def statements(site: Fleet) -> float:
    """QuestDB statements so far, every worker added up (prometheus_client's multiprocess)."""
    bearer = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    scrape = urllib.request.Request(f"{site.base_url}/metrics", headers=bearer)
    with urllib.request.urlopen(scrape, timeout=10) as answer:
        return sum(float(n) for n in STATEMENTS.findall(answer.read().decode()))


def cpu_seconds(group: int) -> float:
    """User + system seconds of every process in gunicorn's process group (master, workers)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # pgrp
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def run(site: Fleet, cookies: list[str], mode: str, seconds: float) -> Result:
    tally, stop = Tally(), threading.Event()
    tabs = [threading.Thread(target=tab, args=(site.base_url, c, mode, stop, tally), daemon=True)
            for c in cookies]  # fmt: skip
    queries, cpu, began = statements(site), cpu_seconds(site.process.pid), time.monotonic()
    for thread in tabs:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in tabs:
        thread.join(timeout=15)
    elapsed = time.monotonic() - began
    done = sorted(tally.latencies)
    return Result(
        rps=len(done) / elapsed,
        statements=(statements(site) - queries) / elapsed,
        cpu=(cpu_seconds(site.process.pid) - cpu) / elapsed,
        p50=statistics.median(done) * 1000 if done else 0.0,
        p99=done[int(0.99 * (len(done) - 1))] * 1000 if done else 0.0,
        bad=tally.bad,
    )


def measure(name: str, redis_url: str, workdir: Path, args: argparse.Namespace) -> dict:
    site = Fleet(
        workdir=workdir / name, questdb_port=settings.QUESTDB_PORT, redis_url=redis_url,
        workers=WORKERS,
        extra_env={"DASHBOARD_FRESH_FOR": "2", "DASHBOARD_REFRESH_INTERVAL": str(REFRESH),
                   "METRICS_TOKEN": METRICS_TOKEN, "DJANGO_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    site.start()
    try:
        cookies = [site.login() for _ in range(args.dashboards)]
        results: dict[str, list[Result]] = {}
        for i in range(args.rounds):
            for mode in ("reload", "live", "hidden"):
                print(f"{name}: round {i + 1} of {args.rounds}, {mode} ...", file=sys.stderr,
                      flush=True)  # fmt: skip
                results.setdefault(mode, []).append(run(site, cookies, mode, args.seconds))
    finally:
        site.stop()
    return results


def report(results: dict[str, dict[str, list[Result]]], args: argparse.Namespace) -> None:
    print(f"\n{args.dashboards} open dashboards; gunicorn: {WORKERS} workers (gthread); "
          f"{args.seconds:g} s a run, {args.rounds} rounds, medians; no Celery beat; "
          f"load average now: {os.getloadavg()[0]:.2f}\n")  # fmt: skip
    print(f"{'config':<7} {'mode':<7} {'req/s':>7} {'QuestDB st/s':>12} {'CPU':>6} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'bad':>4}   vs reload: req/s  st/s  CPU")  # fmt: skip
    for config, modes in results.items():
        base = {f: statistics.median(getattr(r, f) for r in modes["reload"])
                for f in ("rps", "statements", "cpu")}  # fmt: skip
        for mode, runs in modes.items():
            m = {f: statistics.median(getattr(r, f) for r in runs)
                 for f in ("rps", "statements", "cpu", "p50", "p99")}  # fmt: skip
            ratios = "  ".join(f"{m[f] / base[f]:5.2f}" if base[f] else "    -"
                               for f in ("rps", "statements", "cpu"))  # fmt: skip
            print(f"{config:<7} {mode:<7} {m['rps']:>7.1f} {m['statements']:>12.2f} "
                  f"{m['cpu']:>6.2f} {m['p50']:>7.1f} {m['p99']:>7.1f} "
                  f"{sum(r.bad for r in runs):>4}   {ratios}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dashboards", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--configs", default="demo,redis")
    args = parser.parse_args()
    localdb.fetch()
    call_command("questdb", "start")
    call_command("questdb", "seed")
    results = {}
    with tempfile.TemporaryDirectory(prefix="open-dashboards-") as tmp:
        workdir = Path(tmp)
        redis = None
        try:
            for config in args.configs.split(","):
                url = ""
                if config == "redis":
                    redis = RedisServer(port=free_port(), workdir=workdir)
                    redis.start()
                    url = redis.url
                results[config] = measure(config, url, workdir, args)
        finally:
            if redis is not None:
                redis.stop()
    report(results, args)


if __name__ == "__main__":
    main()
