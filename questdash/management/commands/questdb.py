"""`manage.py questdb fetch|start|stop|status|seed`: the local QuestDB."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from questdash import localdb
from questdash.apps import create_cache_table
from questdash.db.router import QUESTDB_ALIAS
from resilience.registry import get_breaker


class Command(BaseCommand):
    help = "Fetch, start, stop or seed the local QuestDB server, or say whether it runs."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["fetch", "start", "stop", "status", "seed"])
        parser.add_argument(
            "--force", action="store_true",
            help="seed: also a server that `questdb start` did not start here (drops its tables)",
        )  # fmt: skip
        parser.add_argument(
            "--rows", type=int, metavar="N",
            help="seed: price rows to load (default: six hours of 10-second prices, 25,920)",
        )  # fmt: skip

    def handle(self, *args, action: str, **options):
        self.options = options
        try:
            getattr(self, f"do_{action}")()
        except localdb.LocalQuestDBError as exc:
            raise CommandError(str(exc)) from exc

    def do_fetch(self) -> None:
        started = time.monotonic()
        jar = localdb.fetch()
        self.stdout.write(
            f"{jar} ({jar.stat().st_size // 2**20} MiB, {time.monotonic() - started:.1f} s)"
        )

    def do_start(self) -> None:
        started = time.monotonic()
        was_running = localdb.status().running
        status = localdb.start()
        verb = (
            "already running" if was_running else f"started in {time.monotonic() - started:.1f} s"
        )
        self.stdout.write(self.style.SUCCESS(f"{status} — {verb}"))
        create_cache_table()  # before `migrate` too: the breaker's shared state lives there
        # It just answered SELECT 1: a breaker that an earlier outage left open
        # in the shared store need not wait out its recovery timeout.
        breaker = get_breaker(QUESTDB_ALIAS)
        if breaker.public_state != "closed" and not breaker.forced:
            breaker.reset("QuestDB answered `manage.py questdb start`")
            self.stdout.write("Closed the questdb circuit breaker.")

    def do_stop(self) -> None:
        stopped = localdb.stop()
        self.stdout.write("QuestDB stopped." if stopped else "QuestDB was not running.")

    def do_status(self) -> None:
        self.stdout.write(str(localdb.status()))

    def do_seed(self) -> None:
        from questdash.seed import seed

        if not self.options["force"]:
            target = connections[QUESTDB_ALIAS].settings_dict
            localdb.ensure_local(target["HOST"], target["PORT"])
        create_cache_table()
        try:
            result = seed(rows=self.options.get("rows"))
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        rows = ", ".join(f"{table}: {count}" for table, count in result.rows.items())
        self.stdout.write(
            self.style.SUCCESS(f"Seeded demo data in {result.seconds:.1f} s ({rows}).")
        )
