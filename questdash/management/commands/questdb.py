"""`manage.py questdb fetch|start|stop|status|seed`: the local QuestDB."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from questdash import localdb
from questdash.db.router import QUESTDB_ALIAS
from resilience.breaker import get_breaker


class Command(BaseCommand):
    help = "Fetch, start, stop or seed the local QuestDB server, or say whether it runs."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["fetch", "start", "stop", "status", "seed"])
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

        try:
            result = seed(rows=self.options.get("rows"))
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        rows = ", ".join(f"{table}: {count}" for table, count in result.rows.items())
        self.stdout.write(
            self.style.SUCCESS(f"Seeded demo data in {result.seconds:.1f} s ({rows}).")
        )
