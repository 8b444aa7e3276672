"""The real QuestDB, run as questdash runs it: ``manage.py questdb fetch|start|seed|stop``.

The product's own commands start it, on the ports that the settings give (each
session exports its own QUESTDB_*_PORT). Imports questdash, so only questdash's
suite and benchmarks use this module, never the app's own suite.
"""

from __future__ import annotations


def start_questdb(*, seed: bool = True, verbosity: int = 1) -> None:
    """Fetch the jar if needed, start the server (idempotent), load the demo data."""
    from django.core.management import call_command

    call_command("questdb", "fetch", verbosity=verbosity)
    call_command("questdb", "start", verbosity=verbosity)  # also closes a breaker left open
    if seed:
        call_command("questdb", "seed", verbosity=verbosity)


def stop_questdb() -> None:
    from django.core.management import call_command

    call_command("questdb", "stop")


def questdb_pid() -> int:
    """The running QuestDB's pid (the JVM): what a test pauses or kills."""
    from questdash import localdb

    pid = localdb.status().pid
    if pid is None:
        raise RuntimeError("QuestDB is not running")
    return pid
