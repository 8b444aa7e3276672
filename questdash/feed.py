"""The demo's market: a tick per symbol every second, written to the local QuestDB.

It plays the exchange's feed, a system outside the dashboard, so it writes
the way market data reaches QuestDB, over InfluxDB line protocol on QuestDB's
HTTP port, and not through the dashboard's engine and breaker: the breaker
guards the dashboard's reads, and a writer's failures are not the staff's.
Only the standard library is used.

Prices are ``seed.price_at`` of each second, the curve the seeded history
was drawn from, so live ticks carry on from it without a jump. On start and
whenever QuestDB comes back the feed first fills the time since the newest
price in the table (up to the seed's six hours), one tick a second, so the
history has no gap, however long the feed or QuestDB was away.

It survives QuestDB going away: the first failure is logged at once, the
rest once a minute with how many followed (no traceback, unless at DEBUG),
and the return with how long it was down; it retries every second. It only
ever writes to the QuestDB that ``manage.py questdb start`` runs here: made-up
prices must never reach a real server.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings

from resilience.errors import describe
from resilience.logs import Summary, log_event

from . import localdb
from .seed import PRICE_HOURS, SYMBOLS, price_at, step_of

logger = logging.getLogger("questdash.feed")

TABLE = "prices"
TIMEOUT = 2.0  # seconds one HTTP request to QuestDB may take
BATCH = 20_000  # lines per write while filling a gap
MAX_FILL = PRICE_HOURS * 3600  # seconds: a longer gap is filled from its last six hours


class FeedRefused(RuntimeError):
    """The feed will not write here (not the local demo server)."""


class Unavailable(Exception):
    """QuestDB did not take the request: down, hung, or it said no (the message says which)."""


def check_local(host: str, http_port: int) -> None:
    """Refuse any QuestDB but the one ``manage.py questdb start`` set up on this machine."""
    conf = localdb.paths().conf
    try:
        bound = re.search(r"^http\.bind\.to=.*:(\d+)$", conf.read_text(), re.MULTILINE)
    except OSError:
        bound = None
    if host not in localdb.LOOPBACK:
        why = f"QUESTDB_HOST is {host!r}, not this machine"
    elif bound is None:
        why = f"no QuestDB was set up by `manage.py questdb start` in {conf.parent}"
    elif int(bound.group(1)) != http_port:
        why = f"the local QuestDB's HTTP port is {bound.group(1)}, not {http_port}"
    else:
        return
    raise FeedRefused(
        f"Refusing to write made-up prices to {host}:{http_port}: {why}. The price feed is for "
        "the local demo: run `manage.py questdb start`, and leave QUESTDB_HOST unset."
    )


def ilp_lines(seconds: range) -> str:
    """One line per symbol and second: ``prices,symbol=AAPL price=231.4 1796524663``."""
    return "".join(
        f"{TABLE},symbol={symbol} price={price_at(symbol, step_of(second))!r} {second}\n"
        for second in seconds
        for symbol in SYMBOLS
    )


@dataclass
class QuestDBHttp:
    """QuestDB's HTTP endpoints: /exec (SQL, JSON answers) and /write (line protocol)."""

    base_url: str
    timeout: float = TIMEOUT

    def newest(self) -> int | None:
        """Epoch second of the newest price (None: an empty table)."""
        query = urllib.parse.urlencode({"query": f"SELECT max(ts) FROM {TABLE}"})
        answer = json.loads(self._send(urllib.request.Request(f"{self.base_url}/exec?{query}")))
        value = answer["dataset"][0][0]
        if value is None:
            return None
        return math.floor(datetime.datetime.fromisoformat(value).timestamp())

    def write(self, lines: str) -> None:
        request = urllib.request.Request(
            f"{self.base_url}/write?precision=s", data=lines.encode(), method="POST",
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )  # fmt: skip
        self._send(request)

    def _send(self, request: urllib.request.Request) -> bytes:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            raise Unavailable(f"QuestDB answered HTTP {exc.code}: {_said(exc)}") from None
        except urllib.error.URLError as exc:  # refused, unknown host: say what, not urllib's wrap
            why = describe(exc.reason) if isinstance(exc.reason, BaseException) else str(exc.reason)
            raise Unavailable(why) from None
        except (OSError, ValueError) as exc:  # reset, timed out; a broken answer
            raise Unavailable(describe(exc)) from None


def _said(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        return exc.reason
    return str(body.get("error") or body.get("message") or exc.reason)


@dataclass
class Feed:
    """Ticks every ``interval`` seconds until ``stop`` is set; fills gaps first."""

    questdb: QuestDBHttp
    interval: float = 1.0
    clock: Callable[[], float] = time.time
    stop: threading.Event = field(default_factory=threading.Event)
    written_to: int | None = None  # the last second written; None: look in the table first
    down_since: float | None = None
    summary: Summary = field(default_factory=lambda: Summary(logger))

    def run(self) -> None:
        log_event(logger, logging.INFO, "questdash.feed.started", url=self.questdb.base_url,
                  symbols=len(SYMBOLS), interval=self.interval)  # fmt: skip
        while not self.stop.is_set():
            self.tick()
            # To the next whole interval: ticks stay on the second, however long a write took.
            self.stop.wait(self.interval - self.clock() % self.interval)
        log_event(logger, logging.INFO, "questdash.feed.stopped", last_tick=self.written_to)

    def tick(self) -> int:
        """Write every second from the last one written up to now; the number of rows."""
        now = math.floor(self.clock())
        try:
            if self.written_to is None:
                newest = self.questdb.newest()
                self.written_to = now - 1 if newest is None else max(newest, now - MAX_FILL)
            seconds = range(self.written_to + 1, now + 1)
            for start in range(seconds.start, seconds.stop, BATCH // len(SYMBOLS)):
                part = range(start, min(seconds.stop, start + BATCH // len(SYMBOLS)))
                self.questdb.write(ilp_lines(part))
                self.written_to = part[-1]
        except Unavailable as exc:
            self._failed(exc)
            return 0
        self._succeeded(len(seconds))
        return len(seconds) * len(SYMBOLS)

    def _failed(self, exc: Unavailable) -> None:
        self.summary.note(("unavailable",), logging.WARNING, "questdash.feed.unavailable",
                          error=str(exc), error_type="Unavailable", retry_every=self.interval,
                          last_tick=self.written_to)  # fmt: skip
        if self.down_since is None:
            self.down_since = self.clock()
        self.written_to = None  # QuestDB may come back without our last rows: look again

    def _succeeded(self, seconds: int) -> None:
        if self.down_since is None:
            return
        log_event(logger, logging.INFO, "questdash.feed.resumed", filled_seconds=seconds,
                  down_seconds=round(self.clock() - self.down_since, 1))  # fmt: skip
        self.down_since = None
        self.summary.reset()


def local_feed(interval: float = 1.0) -> Feed:
    """The feed for this machine's demo QuestDB (``FeedRefused`` for any other)."""
    host, port = settings.QUESTDB_HOST, settings.QUESTDB_HTTP_PORT
    check_local(host, port)
    return Feed(QuestDBHttp(f"http://{host}:{port}"), interval=interval)
