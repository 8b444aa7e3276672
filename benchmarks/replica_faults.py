"""A guarded PostgreSQL read replica going away: printed, not asserted (issue 19).

Two real PostgreSQL clusters (Debian's postgresql, made with initdb), a
primary and a replica, each holding one row that names it; the replica is
the guarded engine (``resilience.db.backends.postgresql``) behind
``ReplicaRouter``, with the app's default budgets (connect and statement
1.5 s, a request 2.5 s) and a 3 s recovery timeout. One client makes
requests one after another (each: Django's connection checks at its edges,
the request deadline, one ORM read), while the replica is paused (SIGSTOP),
cut off (Toxiproxy: live connections dropped, new ones blackholed) or
stopped, for ``--seconds``, and then for as long again once it is back.

Printed per fault: requests, the worst and median request during the fault,
the reads that failed, how many of the fault's reads the primary served
(moved) and how soon the first one came, and how soon after the replica
came back reads returned to it.

Run: .venv/bin/python benchmarks/replica_faults.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import statistics

import demo_site  # noqa: F401 - first: it sets Django up
from django.test.utils import override_settings

from resilience.registry import reset_registry
from testkit.ports import free_port
from testkit.postgres import Reads, database_aliases, faults, guarded_alias, running_postgres
from testkit.toxiproxy import Toxiproxy

RECOVERY = 3.0
SETTINGS = {
    "STORE": "resilience.stores.LocalStore",
    "READ_REPLICAS": ["pg_replica"],
    "PRIMARY_DATABASE": "pg_primary",
    "RECOVERY_TIMEOUT": RECOVERY,
}


def cluster(source: str):
    server = running_postgres()
    pg = server.__enter__()
    pg.execute("CREATE DATABASE app")
    pg.execute(
        "CREATE TABLE resilience_circuitbreaker (name varchar(100) PRIMARY KEY);"
        f"INSERT INTO resilience_circuitbreaker VALUES ('{source}')",
        "app",
    )
    return server, pg


def measure(begin, end, seconds: float) -> dict[str, float | int | str]:
    reset_registry()
    reads = Reads()
    reads.run(1.0)
    began, healed = reads.through(begin, end, seconds)
    reads.run(seconds)
    during = [(s, took, a) for s, took, a in reads.answers if began <= s < healed]
    after = [(s, a) for s, _, a in reads.answers if s >= healed]
    moved = [s for s, _, a in during if a == "primary"]
    back = next((s for s, a in after if a == "replica"), None)
    return {
        "requests": len(during),
        "worst": max(took for _, took, _ in during),
        "median": statistics.median(took for _, took, _ in during),
        "failed": sum(a.startswith("error") for _, _, a in during),
        "moved": len(moved),
        "first moved": moved[0] - began if moved else float("nan"),
        "back after": back - healed if back is not None else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="how long each fault lasts")
    args = parser.parse_args()
    primary_server, primary = cluster("primary")
    replica_server, replica = cluster("replica")
    toxiproxy = Toxiproxy(port=free_port())
    toxiproxy.start()
    proxy = toxiproxy.proxy("pg_replica", free_port(), f"127.0.0.1:{replica.port}")
    results = {}
    try:
        with override_settings(
            RESILIENCE=SETTINGS, DATABASE_ROUTERS=["resilience.db.router.ReplicaRouter"]
        ):
            for fault, begin_end in faults(replica, proxy).items():
                port = proxy.port if fault == "cut off" else replica.port
                aliases = {"pg_primary": guarded_alias(primary.port),
                           "pg_replica": guarded_alias(port)}  # fmt: skip
                with database_aliases(**aliases):
                    results[fault] = measure(*begin_end, args.seconds)
    finally:
        toxiproxy.stop()
        replica_server.__exit__(None, None, None)
        primary_server.__exit__(None, None, None)
    print(f"\nthe replica away for {args.seconds:g} s, then back; one client, requests "
          "back to back; the app's default budgets (request 2.5 s), recovery timeout "
          f"{RECOVERY:g} s\n")  # fmt: skip
    print(f"{'fault':<9} {'requests':>8} {'worst s':>8} {'median s':>9} {'failed':>6} "
          f"{'to primary':>10} {'first moved s':>13} {'back after s':>12}")  # fmt: skip
    for fault, r in results.items():
        print(f"{fault:<9} {r['requests']:>8} {r['worst']:>8.2f} {r['median']:>9.3f} "
              f"{r['failed']:>6} {r['moved']:>10} {r['first moved']:>13.2f} "
              f"{r['back after']:>12.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
