"""How long staff wait for fresh data once QuestDB is back: printed, not asserted.

Against a real QuestDB (the test ports) through the real API view:
  1. QuestDB stopped until the breaker opens, then started again by other
     means: fresh data returns at the first probe, when the recovery window
     ends (RESILIENCE_RECOVERY_TIMEOUT after the breaker opened);
  2. the same, started with `manage.py questdb start`, which closes the
     breaker once QuestDB has answered.

Run: .venv/bin/python benchmarks/heal_time.py
"""

from __future__ import annotations

import time

from demo_site import staff_client  # first: it sets Django up
from django.core.management import call_command
from django.test import Client

from questdash import localdb
from resilience.conf import breaker_config
from resilience.registry import get_breaker

URL = "/api/dashboard/positions/"


def status(client: Client) -> str:
    return client.get(URL).json()["status"]


def outage_then(client: Client, restart) -> tuple[float, float]:
    """Seconds from the restart's return to the first ok, and the restart's own time."""
    assert status(client) == "ok"
    localdb.stop()
    while get_breaker("questdb").public_state != "open":
        status(client)
    started = time.monotonic()
    restart()
    returned = time.monotonic()
    while status(client) != "ok":
        time.sleep(0.1)
    return time.monotonic() - returned, returned - started


def main() -> None:
    client = staff_client()

    recovery = breaker_config("questdb")["RECOVERY_TIMEOUT"]
    natural, took = outage_then(client, localdb.start)
    print(f"recovery timeout {recovery:g} s")
    print(f"QuestDB started by other means ({took:.1f} s): fresh data {natural:.1f} s later")
    command, took = outage_then(client, lambda: call_command("questdb", "start", verbosity=0))
    print(f"`manage.py questdb start` ({took:.1f} s): fresh data {command:.1f} s later")


if __name__ == "__main__":
    main()
