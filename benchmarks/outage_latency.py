"""How long staff wait while QuestDB hangs, before and after: printed, not asserted.

For each hang of issue 8 (testkit/fleet.py: SIGSTOP, blackhole at connect,
blackhole mid-query, 150 ms and 2 s of latency per packet, and reset_peer),
gunicorn with 4 workers serves the site to staff clients (two thirds on the
JSON API, the rest on the dashboard page and /ht/) while the hang lasts.
Both designs run in the same run, each on a fresh gunicorn, one hang after
the other:

- before: the story's naive design (benchmarks/naive: tenacity, 3 attempts
  100/500/1000 ms apart, no breaker, no deadline, no client-side timeouts);
- after: the product with its default settings (tests/fleet_settings.py).

Printed per hang: p50, p99 and max request time, client side, of every
request in flight at any time during the hang; how long after the hang
began every worker had answered with the breaker open; and how long after
it ended every answer was fresh again.

Run: .venv/bin/python benchmarks/outage_latency.py [--seconds 20] [--clients 12]
     [--hangs sigstop,latency_2s] [--designs before,after,NAME=SETTINGS_MODULE]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import demo_site  # noqa: F401 - first: it sets Django up (test ports)
from django.conf import settings

from testkit.fleet import Fleet, Hang, Percentiles, StaffLoad, first_open_in_every_worker, hangs
from testkit.ports import free_port
from testkit.questdb import questdb_pid, start_questdb
from testkit.redis_server import RedisServer
from testkit.toxiproxy import Toxiproxy

DESIGNS = {"before": "benchmarks.naive.settings", "after": "tests.fleet_settings"}
WORKERS = 4


def measure(fleet: Fleet, hang: Hang, seconds: float, clients: int) -> dict[str, object]:
    fleet.start()
    try:
        with fleet.load(clients, timeout=seconds + 60) as load:
            load.warm(WORKERS, timeout=60)
            began, ended, fresh = load.ride_out(hang, seconds, WORKERS, recovery=seconds + 90)
    finally:
        fleet.stop()
    during = load.during(began, ended)
    return {
        "times": Percentiles.of([a.elapsed for a in during]),
        "unanswered": sum(1 for a in during if a.status == 0),
        "open": first_open_in_every_worker(load.answers, began, WORKERS),
        "fresh": fresh - ended,
    }


def cell(result: dict[str, object], design: str) -> str:
    times: Percentiles = result["times"]  # type: ignore[assignment]
    opened = result["open"]
    if design == "before":
        opened_text = "no breaker"
    else:
        opened_text = "stays closed" if opened is None else f"{opened:.1f}"
    fresh = result["fresh"]
    return (
        f"{times.count:>5} {times.p50:>6.2f} {times.p99:>6.2f} {times.max:>6.2f} "
        f"{opened_text:>12} {fresh:>6.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each hang lasts")
    parser.add_argument("--clients", type=int, default=12, help="staff clients (at least 8)")
    parser.add_argument("--hangs", default="", help="comma-separated; default all")
    parser.add_argument(
        "--designs",
        default="before,after",
        help="columns: before, after, or NAME=SETTINGS_MODULE for another configuration",
    )
    args = parser.parse_args()

    start_questdb(verbosity=0)
    workdir = Path(tempfile.mkdtemp(prefix="outage-latency-"))
    redis = RedisServer(port=free_port(), workdir=workdir)
    toxiproxy = Toxiproxy(port=free_port())
    redis.start()
    toxiproxy.start()
    upstream = f"{settings.QUESTDB_HOST}:{settings.QUESTDB_PORT}"
    proxy = toxiproxy.proxy("questdb_outage_latency", free_port(), upstream)
    catalogue = hangs(proxy, questdb_pid)
    chosen = [name for name in args.hangs.split(",") if name] or list(catalogue)
    for item in args.designs.split(","):
        if "=" in item:
            name, module = item.split("=", 1)
            DESIGNS[name] = module
    designs = [item.split("=", 1)[0] for item in args.designs.split(",") if item]
    results: dict[tuple[str, str], dict[str, object]] = {}
    try:
        fleets = {
            design: Fleet(
                workdir=workdir / design,
                questdb_port=proxy.port,
                redis_url=f"{redis.url.rsplit('/', 1)[0]}/{i + 1}",
                workers=WORKERS,
                settings=DESIGNS[design],
            )
            for i, design in enumerate(designs)
        }
        for name in chosen:
            for design in designs:
                print(f"{name}, {design} ...", file=sys.stderr, flush=True)
                results[name, design] = measure(
                    fleets[design], catalogue[name], args.seconds, args.clients
                )
    finally:
        proxy.delete()
        toxiproxy.stop()
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"{WORKERS} gunicorn workers (gthread), {args.clients} staff clients, each hang "
        f"{args.seconds:g} s; seconds, client side, every request in flight during the hang\n"
        "open: after the hang began, every worker had answered with the breaker open; "
        f"fresh: after it ended, every answer was fresh ({StaffLoad.WINDOW:g} s on)\n"
    )
    header = f"{'n':>5} {'p50':>6} {'p99':>6} {'max':>6} {'open':>12} {'fresh':>6}"
    print(f"{'':<22}" + "".join(f"| {d:<{len(header)}} " for d in designs))
    print(f"{'hang':<22}" + f"| {header} " * len(designs))
    for name in chosen:
        row = "".join(f"| {cell(results[name, d], d)} " for d in designs)
        print(f"{name:<22}{row}")


if __name__ == "__main__":
    main()
