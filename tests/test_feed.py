"""The demo's price feed (questdash.feed, `manage.py price_feed`) on the real QuestDB.

It carries the seeded history on without a gap or a jump, lives through
QuestDB refusing and hanging (cut off by a real Toxiproxy; the browser test
stops QuestDB itself under `make run`'s processes), says so once per outage
without a traceback, fills the outage when QuestDB is back, stops on Ctrl-C,
and refuses any QuestDB but the local demo's. Each test leaves the demo data
as the other tests expect it (seeded again).
"""

from __future__ import annotations

import datetime
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from django.db import connections

from questdash import seed
from questdash.db.router import QUESTDB_ALIAS
from questdash.feed import Feed, QuestDBHttp
from questdash.seed import SYMBOLS, price_at, step_of
from testkit.fleet import ROOT
from testkit.ports import free_port

pytestmark = [pytest.mark.usefixtures("questdb_server"), pytest.mark.django_db(databases="__all__")]

HTTP = f"http://127.0.0.1:{settings.QUESTDB_HTTP_PORT}"


@pytest.fixture
def reseeded() -> Iterator[None]:
    """A fresh seed to start from; the demo data again after (the feed's rows gone)."""
    connections[QUESTDB_ALIAS].close()  # another test may have restarted QuestDB
    seed.seed()
    yield
    seed.seed()


def select(sql: str, params: list) -> list[tuple]:
    with connections[QUESTDB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def seconds_of(symbol: str, since: int) -> list[tuple[int, float]]:
    """(epoch second, price) of each price of ``symbol`` at or after ``since``, in time order."""
    start = datetime.datetime.fromtimestamp(since, datetime.UTC)
    rows = select("SELECT ts, price FROM prices WHERE symbol = %s AND ts >= %s ORDER BY ts",
                  [symbol, start])  # fmt: skip
    return [(round(ts.timestamp()), price) for ts, price in rows]


def until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``condition`` (QuestDB applies writes asynchronously) until it is true."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.1)
    return result


def reaching(symbol: str, since: int, second: int) -> Callable[[], list[tuple[int, float]]]:
    """A condition: ``symbol``'s prices since ``since`` once they reach ``second``, else []."""

    def look() -> list[tuple[int, float]]:
        rows = seconds_of(symbol, since)
        return rows if rows and rows[-1][0] >= second else []

    return look


def newest_second() -> int:
    return round(select("SELECT max(ts) FROM prices", [])[0][0].timestamp())


def test_the_feed_carries_the_seeded_history_on_without_a_gap(reseeded):
    last = newest_second()  # the seed's last step, within 10 s of now
    assert last % seed.PRICE_INTERVAL_S == 0
    feed = Feed(QuestDBHttp(HTTP), clock=lambda: last + 25.4)  # 25 s after the seed ended
    assert feed.tick() == 25 * len(SYMBOLS)
    assert feed.tick() == 0  # the same second again: nothing new to write
    for symbol in ("AAPL", "EURUSD", "BTC-USD"):
        rows = until(lambda s=symbol: len(got := seconds_of(s, last)) == 26 and got, 30,
                     f"{symbol}'s ticks visible")  # fmt: skip
        assert [t for t, _ in rows] == list(range(last, last + 26))  # every second, from the seed's
        assert [p for _, p in rows] == [price_at(symbol, step_of(t)) for t, _ in rows]
        moves = [abs(b - a) / a for (_, a), (_, b) in itertools.pairwise(rows)]
        assert max(moves) < 0.001, moves  # no jump where the seed ends and the feed begins


def test_the_feed_lives_through_questdb_refusing_and_hanging(reseeded, toxiproxy, caplog):
    caplog.set_level(logging.INFO, logger="questdash.feed")
    proxy = toxiproxy.proxy("questdb_http", free_port(), f"127.0.0.1:{settings.QUESTDB_HTTP_PORT}")
    feed = Feed(QuestDBHttp(f"http://127.0.0.1:{proxy.port}", timeout=1.0))
    runner = threading.Thread(target=feed.run, daemon=True)
    runner.start()
    try:
        started = round(time.time())
        until(lambda: newest_second() >= started, 30, "live ticks")
        for cut, name in ((lambda: proxy.set_enabled(False), "refused"), (proxy.blackhole, "hung")):
            cut()
            down = until(lambda: feed.down_since, 10, f"the feed sees QuestDB {name}")
            until(lambda d=down: time.time() - d > 3, 10, "three ticks' time without QuestDB")
            frozen = newest_second()
            assert frozen <= down + 1, name  # nothing written while it was away
            proxy.heal()
            proxy.set_enabled(True)
            until(lambda: feed.down_since is None, 20, f"the feed back after QuestDB {name}")
            for symbol in ("AAPL", "XOM"):  # the outage filled: a price every second throughout
                rows = until(reaching(symbol, started, round(time.time())), 30, "the outage filled")
                assert [t for t, _ in rows] == list(range(started, rows[-1][0] + 1)), name
    finally:
        feed.stop.set()
        runner.join(timeout=5)
        proxy.delete()
    assert not runner.is_alive()  # stopped within the in-flight request's timeout
    events = [(r.levelname, json.loads(r.getMessage())) for r in caplog.records
              if r.name == "questdash.feed"]  # fmt: skip
    kinds = [(level, event["event_type"]) for level, event in events]
    assert kinds == [
        ("INFO", "questdash.feed.started"),
        ("WARNING", "questdash.feed.unavailable"), ("INFO", "questdash.feed.resumed"),
        ("WARNING", "questdash.feed.unavailable"), ("INFO", "questdash.feed.resumed"),
        ("INFO", "questdash.feed.stopped"),
    ], kinds  # fmt: skip
    warnings = [event["data"] for level, event in events if level == "WARNING"]
    assert "refused" in warnings[0]["error"].lower(), warnings[0]
    assert "timed out" in warnings[1]["error"].lower(), warnings[1]
    resumed = [event["data"] for _, event in events if event["event_type"].endswith("resumed")]
    assert all(r["down_seconds"] >= 3 and r["filled_seconds"] >= 3 for r in resumed), resumed
    assert not any(r.exc_info for r in caplog.records if r.name == "questdash.feed")


def test_price_feed_command_stops_on_ctrl_c_and_refuses_other_servers(reseeded, tmp_path):
    command = [sys.executable, "manage.py", "price_feed"]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    with (tmp_path / "feed.log").open("w+") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        started = round(time.time())
        try:
            until(lambda: newest_second() >= started + 1, 30, "the command's ticks")
        finally:
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=10)
        log.seek(0)
        output = log.read()
    assert code == 0, output
    assert "Traceback" not in output and "questdash.feed.stopped" in output, output

    other = str(settings.QUESTDB_HTTP_PORT + 1)  # a QuestDB that `questdb start` did not set up
    refused = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60,
                             env={**env, "QUESTDB_HTTP_PORT": other})  # fmt: skip
    assert refused.returncode == 1
    assert f"Refusing to write made-up prices to 127.0.0.1:{other}" in refused.stderr
    assert "Traceback" not in refused.stderr
