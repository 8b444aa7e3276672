"""The site under load, healthy and in an outage: printed, not asserted (issue 11).

gunicorn serves the site (2 workers, the product's gunicorn.conf.py and
settings, on the test ports) to Debian's ``wrk`` (2 threads, 16
connections, a staff session cookie from a real login through the admin's
form), once with the demo settings (SQLite database cache) and once with
Redis (``REDIS_URL``). Each round runs, side by side on the same server:

- the floor: ``/bench/floor/``, a bare JSON view behind the same session
  auth and middleware (``benchmarks.floor``, served only here);
- ``/api/dashboard/positions/`` with QuestDB up (healthy);
- ``/ht/live/``, as an orchestrator's probe calls it (no cookie);
- the same API with QuestDB stopped and the breaker open the whole run
  (reset, then tripped by real failures just before the run);

and, on a second server whose breaker probes after 5 s, the trip and the
probes: QuestDB stops 2 s into the run and comes back 9 s in, so the run
spans the trip, a failed probe, a good one and the return to fresh data.

Printed: requests per second, p50, p99 and max latency (medians over the
rounds), the WARNING-or-above log lines per minute the server wrote during
each run, and the ratios the issue targets, each taken within a round and
then the median over rounds. The machine's load average is printed too:
numbers from a busy machine are lower and noisier.

With ``--server uvicorn`` the same rounds run on uvicorn as well (ASGI, as
many workers, the same settings), each configuration on gunicorn and on
uvicorn side by side in one run.

Run: .venv/bin/python benchmarks/load.py [--seconds 12] [--rounds 3] [--configs demo,redis]
[--server uvicorn]
(``wrk`` is installed with apt-get when missing: root or sudo.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import demo_site  # noqa: F401 - first: it sets Django up (test ports)
from django.conf import settings

from benchmarks.floor.urls import FLOOR
from questdash import localdb
from testkit.fleet import Fleet, request
from testkit.ports import free_port
from testkit.questdb import start_questdb
from testkit.redis_server import RedisServer

WORKERS = 2
THREADS, CONNECTIONS = 2, 16  # wrk's, as in the issue
API = "/api/dashboard/positions/"
LIVE = "/ht/live/"
SETTINGS = "benchmarks.floor.settings"
# The trip-and-probe server: QuestDB is away from STOP_AT to START_AT seconds into the run.
PROBE_RECOVERY, STOP_AT, START_AT, EXTRA = 5, 2.0, 9.0, 8.0
BUDGET = 3.0  # seconds nobody waits (README, "Time budgets")
WARNING_LEVELS = {"WARNING", "ERROR", "CRITICAL"}
RESET = "from resilience.registry import get_breaker; get_breaker('questdb').reset('benchmark')"


# --- wrk ---------------------------------------------------------------------------------


@dataclass
class Run:
    """One wrk run, and what the server logged meanwhile."""

    rps: float
    p50: float  # milliseconds
    p99: float
    max: float
    requests: int
    bad: int  # non-2xx answers, socket errors and timeouts
    warnings: int = 0
    seconds: float = 0.0
    state_changes: int = 0

    @property
    def warnings_per_minute(self) -> float:
        return self.warnings * 60 / self.seconds if self.seconds else 0.0


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()
    return float(number) * UNITS[unit]


def ensure_wrk() -> str:
    """Debian's wrk, installed with apt-get as redis-server is by scripts/test.sh."""
    if found := shutil.which("wrk"):
        return found
    print("Installing wrk (Debian's package) with apt-get", file=sys.stderr, flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, capture_output=True)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "wrk"], check=True,
                   capture_output=True)  # fmt: skip
    return shutil.which("wrk") or "wrk"


def wrk(url: str, seconds: float, cookie: str = "") -> Run:
    command = [ensure_wrk(), "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds:g}s",
               "--latency", "--timeout", "10s", url]  # fmt: skip
    if cookie:
        command[1:1] = ["-H", f"Cookie: {cookie}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Latency Distribution" not in out:
        raise RuntimeError(f"wrk printed no latencies:\n{out}")
    latency = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    percent = dict(re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", out, re.MULTILINE))
    if "99" not in percent:
        raise RuntimeError(f"wrk printed no p99:\n{out}")
    done = re.search(r"(\d+) requests in", out)
    errors = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    bad = (int(non2xx.group(1)) if non2xx else 0) + sum(map(int, errors.groups() if errors else ()))
    return Run(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        p50=_ms(percent["50"]),
        p99=_ms(percent["99"]),
        max=_ms(latency.group(3)),
        requests=int(done.group(1)),
        bad=bad,
    )


# --- the server ----------------------------------------------------------------------------


class Site:
    """One gunicorn fleet, logged in, with its log read back per run."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        fleet.start()
        self.cookie = fleet.login()

    def url(self, path: str) -> str:
        return self.fleet.base_url + path

    def get(self, path: str = API):
        return request(self.fleet.base_url, path, timeout=10, cookie=self.cookie)

    def timed(self, path: str, seconds: float, *, cookie: bool = True) -> Run:
        began = time.time()
        run = wrk(self.url(path), seconds, self.cookie if cookie else "")
        self.read_log(run, began, time.time())
        return run

    def read_log(self, run: Run, began: float, ended: float) -> None:
        """The server's WARNING-or-above lines, and its breaker's state changes, in the run."""
        run.seconds = ended - began
        for line in self.fleet.log.read_text().splitlines():
            try:
                entry = json.loads(line)
                at = datetime.fromisoformat(entry["timestamp"]).timestamp()
            except (ValueError, KeyError, TypeError):
                continue
            if not began <= at <= ended:
                continue
            run.warnings += entry.get("level") in WARNING_LEVELS
            run.state_changes += entry.get("event_type") == "resilience.state_changed"

    def wait_for(self, status: str, breaker: str = "", timeout: float = 60) -> None:
        """Until the API answers ``status`` (and the breaker header says ``breaker``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.get()
            says = answer.status in (200, 503) and answer.json()["status"] == status
            if says and (not breaker or answer.breaker == breaker):
                return
            time.sleep(0.05)
        raise RuntimeError(f"the API did not answer {status!r} within {timeout:g} s")

    def reset_breaker(self) -> None:
        """Closed, in the fleet's shared store (its workers see it within SYNC_INTERVAL)."""
        self.fleet.manage("shell", "-c", RESET)

    def stop(self) -> None:
        self.fleet.stop()


def steady_round(site: Site, seconds: float) -> dict[str, Run]:
    """Floor, healthy, liveness, then QuestDB stopped with the breaker open throughout."""
    runs = {
        "floor": site.timed(FLOOR, seconds),
        "healthy": site.timed(API, seconds),
        "live": site.timed(LIVE, seconds, cookie=False),
    }
    localdb.stop()
    site.reset_breaker()  # opened afresh just now: the run ends long before its probe
    site.wait_for("degraded", breaker="open")
    runs["outage"] = site.timed(API, seconds)
    site.wait_for("degraded", breaker="open")
    localdb.start()
    site.reset_breaker()
    site.wait_for("ok")
    return runs


def trip_and_probe(site: Site, seconds: float) -> Run:
    """QuestDB stops during the run and comes back; the breaker trips and probes."""

    def outage() -> None:
        time.sleep(STOP_AT)
        localdb.stop()
        time.sleep(max(0.0, START_AT - (time.monotonic() - started)))
        localdb.start()

    site.wait_for("ok")
    started = time.monotonic()
    thread = threading.Thread(target=outage)
    thread.start()
    run = site.timed(API, seconds + EXTRA)
    thread.join()
    site.wait_for("ok", timeout=2 * PROBE_RECOVERY + 30)
    return run


# --- one configuration -----------------------------------------------------------------------


def measure(
    name: str, redis_url: str, workdir: Path, seconds: float, rounds: int, server: str
) -> dict:
    def fleet(tag: str, **extra_env: str) -> Fleet:
        # The product's defaults where the fleet's test harness sets its own.
        env = {"DASHBOARD_FRESH_FOR": "2", "DJANGO_LOG_LEVEL": "INFO", **extra_env}
        return Fleet(
            workdir=workdir / f"{name}-{server}-{tag}",
            questdb_port=settings.QUESTDB_PORT,
            redis_url=redis_url,
            workers=WORKERS,
            settings=SETTINGS,
            extra_env=env,
            server=server,
        )

    results: dict[str, list[Run]] = {}
    site = Site(fleet("steady"))
    try:
        site.wait_for("ok")
        for i in range(rounds):
            print(f"{name}, {server}: round {i + 1} of {rounds} ...", file=sys.stderr, flush=True)
            for key, run in steady_round(site, seconds).items():
                results.setdefault(key, []).append(run)
    finally:
        site.stop()
    site = Site(fleet("probe", RESILIENCE_RECOVERY_TIMEOUT=str(PROBE_RECOVERY)))
    try:
        for i in range(rounds):
            print(f"{name}, {server}: trip and probe {i + 1} of {rounds} ...", file=sys.stderr,
                  flush=True)  # fmt: skip
            results.setdefault("trip", []).append(trip_and_probe(site, seconds))
    finally:
        site.stop()
    return results


# --- the table -----------------------------------------------------------------------------

ROWS = [
    ("floor", f"the floor ({FLOOR})"),
    ("healthy", f"{API}, QuestDB up"),
    ("outage", "same, QuestDB stopped, breaker open"),
    ("trip", f"same, trip and probes ({STOP_AT:g}-{START_AT:g} s down)"),
    ("live", f"{LIVE} (no cookie)"),
]
RATIOS = [
    ("outage / healthy, req/s", lambda r: r["outage"].rps / r["healthy"].rps, ">= 1.0"),
    ("healthy / floor, req/s", lambda r: r["healthy"].rps / r["floor"].rps, ">= 0.8"),
    ("outage / floor, req/s", lambda r: r["outage"].rps / r["floor"].rps, ">= 0.8"),
    ("outage p99 / healthy p99", lambda r: r["outage"].p99 / r["healthy"].p99, "<= 1.5"),
    ("/ht/live/ / healthy API, req/s", lambda r: r["live"].rps / r["healthy"].rps, ">= 1.0"),
]


def median(runs: list[Run], field: str) -> float:
    return statistics.median(getattr(run, field) for run in runs)


def cell(runs: list[Run]) -> str:
    return (
        f"{median(runs, 'rps'):>7,.0f} {median(runs, 'p50'):>6.1f} {median(runs, 'p99'):>6.1f} "
        f"{max(r.max for r in runs):>7.0f} {median(runs, 'warnings_per_minute'):>6.0f}"
    )


def report(results: dict[str, dict[str, list[Run]]], args: argparse.Namespace, load: str) -> None:
    configs = list(results)
    print(f"\ngunicorn: {WORKERS} workers (gthread, gunicorn.conf.py); uvicorn (if shown): "
          f"{WORKERS} workers (ASGI, questdash.asgi); wrk: {THREADS} threads, "
          f"{CONNECTIONS} connections, {args.seconds:g} s a run ({args.seconds + EXTRA:g} s for "
          f"the trip), {args.rounds} rounds; medians (max: the largest of any round)")  # fmt: skip
    print(f"load average (1, 5, 15 min) before and after: {load}\n")
    header = f"{'req/s':>7} {'p50':>6} {'p99':>6} {'max':>7} {'WARN/m':>6}"
    names = {"demo": "demo (SQLite cache)", "redis": "Redis (REDIS_URL)"}
    names = {f"{c}/{srv}": f"{label}, {srv}" for c, label in names.items()
             for srv in ("gunicorn", "uvicorn")}  # fmt: skip
    print(f"{'':<48}" + "".join(f"| {names.get(c, c):<{len(header)}} " for c in configs))
    print(f"{'ms':<48}" + f"| {header} " * len(configs))
    for key, label in ROWS:
        print(f"{label:<48}" + "".join(f"| {cell(results[c][key])} " for c in configs))
    print()
    for label, ratio, target in RATIOS:
        values = []
        for c in configs:
            per_round = [
                ratio({k: runs[i] for k, runs in results[c].items()})
                for i in range(len(results[c]["healthy"]))
            ]
            values.append(f"{statistics.median(per_round):>6.2f}x")
        label = f"{label} ({target})"
        print(f"{label:<48}" + "".join(f"| {v:<{len(header)}} " for v in values))
    print()
    for c in configs:
        base = c.replace("/uvicorn", "/gunicorn")
        if c.endswith("/uvicorn") and base in results:
            ratios = ", ".join(
                f"{key} {median(results[c][key], 'rps') / median(results[base][key], 'rps'):.2f}x"
                for key in ("floor", "healthy", "outage", "live")
            )
            print(f"{c} / {base}, req/s: {ratios}")
    for c in configs:
        trip = results[c]["trip"]
        slow = max(r.max for r in trip) / 1e3
        opened = [r.state_changes for r in results[c]["outage"]]
        bad = {k: sum(r.bad for r in runs) for k, runs in results[c].items() if k != "trip"}
        print(f"{c}: trip and probe: slowest answer {slow:.2f} s (budget {BUDGET:g} s: "
              f"{'met' if slow <= BUDGET else 'MISSED'}); state changes logged during the steady "
              f"outage runs: {opened} (0: open throughout); non-2xx or failed: {bad}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--configs", default="demo,redis", help="demo, redis or both")
    parser.add_argument("--keep", action="store_true", help="keep the servers' logs (printed)")
    parser.add_argument(
        "--server", choices=("gunicorn", "uvicorn"), default="gunicorn",
        help="uvicorn: run every configuration on uvicorn too, beside gunicorn",
    )  # fmt: skip
    args = parser.parse_args()

    ensure_wrk()
    start_questdb(verbosity=0)
    before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="load-"))
    redis = RedisServer(port=free_port(), workdir=workdir)
    results: dict[str, dict[str, list[Run]]] = {}
    servers = ["gunicorn"] if args.server == "gunicorn" else ["gunicorn", "uvicorn"]
    try:
        for config in args.configs.split(","):
            url = ""
            if config == "redis":
                redis.start()
                url = redis.url
            for server in servers:
                results[f"{config}/{server}"] = measure(
                    config, url, workdir, args.seconds, args.rounds, server
                )
    finally:
        redis.stop()
        if not localdb.status().running:
            localdb.start()
        if args.keep:
            print(f"logs kept under {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    after = os.getloadavg()
    load = ", ".join(f"{a:.2f}" for a in before) + " / " + ", ".join(f"{a:.2f}" for a in after)
    report(results, args, load)


if __name__ == "__main__":
    main()
