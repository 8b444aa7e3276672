"""`manage.py price_feed`: the local demo's market, a tick per symbol every second.

`make run` runs it beside the web server and the Celery worker (Procfile);
Ctrl-C or SIGTERM stops it within a second. See questdash.feed.
"""

from __future__ import annotations

import signal

from django.core.management.base import BaseCommand, CommandError

from questdash.feed import FeedRefused, local_feed


class Command(BaseCommand):
    help = "Write a price per demo symbol every second to the local QuestDB, until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between ticks")

    def handle(self, *args, interval: float, **options):
        if not 0.05 <= interval <= 3600:
            raise CommandError(f"--interval must be between 0.05 and 3600 seconds, not {interval}.")
        try:
            feed = local_feed(interval)
        except FeedRefused as exc:
            raise CommandError(str(exc)) from None
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: feed.stop.set())
        feed.run()
