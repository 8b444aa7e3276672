"""Issue 17: the 3 s promise holds when our own parts are slow or locked, QuestDB healthy.

The site runs as deployed (testkit/fleet.py: gunicorn, the product's settings),
in both layouts:

- Redis, every answer 300 ms late through Toxiproxy (slow, but inside the
  1 s socket timeout): the dashboard page and the API end within
  ``REQUEST_DEADLINE`` + 0.5 s, fresh from QuestDB, in a few round trips
  (counted by Redis itself);
- the demo's SQLite database cache held under a write lock by another
  process for 8 s: the API answers fresh from QuestDB, in time, and never
  calls the cache's fault a QuestDB outage.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from testkit.fleet import API, DASHBOARD, Fleet, request
from testkit.ports import free_port
from testkit.toxiproxy import Proxy

pytestmark = [pytest.mark.usefixtures("questdb_server"), pytest.mark.timeout(180)]

BOUND = 3.0  # REQUEST_DEADLINE (2.5 s) + 0.5 s
LATENCY_MS = 300
SECTION = "positions"
FRESH_FOR = 2.0  # the product's DASHBOARD_FRESH_FOR: copies older than this are read again
MAX_ROUND_TRIPS = 4  # per request, once the cache is known slow (14 for the page before)


@pytest.fixture(scope="module")
def slow_redis(toxiproxy, redis_server) -> Iterator[tuple[Proxy, redis.Redis]]:
    """Database 7 of the session's redis-server behind a proxy of its own, and a direct
    client that counts the commands the site sends."""
    proxy = toxiproxy.proxy("redis_slow", free_port(), f"127.0.0.1:{redis_server.port}")
    direct = redis.Redis(port=redis_server.port, db=7)
    direct.flushdb()
    yield proxy, direct
    proxy.delete()


def commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info",))


def site(workdir, questdb_port: int, redis_url: str) -> Fleet:
    return Fleet(workdir, questdb_port, redis_url, workers=1,
                 extra_env={"DASHBOARD_FRESH_FOR": str(FRESH_FOR)})  # fmt: skip


def test_a_slow_redis_costs_a_few_round_trips_and_never_the_budget(
    slow_redis, tmp_path_factory, settings
):
    proxy, direct = slow_redis
    fleet = site(tmp_path_factory.mktemp("slow-redis"), int(settings.QUESTDB_PORT),
                 f"redis://127.0.0.1:{proxy.port}/7")  # fmt: skip
    fleet.start()
    try:
        cookie = fleet.login()
        for path in (DASHBOARD, API.format(SECTION)):
            assert request(fleet.base_url, path, timeout=10, cookie=cookie).status == 200
        proxy.latency(LATENCY_MS)
        # A first request or two teach the site that the cache is slow; from then on:
        for path in (DASHBOARD, API.format(SECTION)):
            request(fleet.base_url, path, timeout=10, cookie=cookie)
        for path in (DASHBOARD, API.format(SECTION), DASHBOARD, API.format(SECTION)):
            time.sleep(FRESH_FOR + 0.2)  # the copies are old: each request reads QuestDB
            before = commands(direct)
            answer = request(fleet.base_url, path, timeout=10, cookie=cookie)
            made = commands(direct) - before
            assert answer.status == 200, answer.body[:300]
            assert answer.elapsed <= BOUND, f"{path} took {answer.elapsed:.2f} s"
            if path == DASHBOARD:
                assert b"status-degraded" not in answer.body and b"status-error" not in answer.body
            else:
                body = answer.json()
                assert (body["status"], body["reason"]) == ("ok", None), body
            # The site's background threads (fleet figures) add one now and then.
            assert made <= MAX_ROUND_TRIPS + 1, f"{path}: {made} Redis commands"
    finally:
        proxy.heal()
        fleet.stop()


def hold_write_lock(database, seconds: float, held: threading.Event) -> None:
    """Another process's long write transaction on the demo's SQLite database."""
    connection = sqlite3.connect(database, timeout=30, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        held.set()
        time.sleep(seconds)
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def test_a_locked_sqlite_cache_is_not_a_questdb_outage(tmp_path_factory, settings):
    fleet = site(tmp_path_factory.mktemp("locked-sqlite"), int(settings.QUESTDB_PORT), "")
    fleet.start()
    try:
        cookie = fleet.login()
        path = API.format(SECTION)
        assert request(fleet.base_url, path, timeout=10, cookie=cookie).json()["status"] == "ok"
        held = threading.Event()
        lock = threading.Thread(
            target=hold_write_lock, args=(fleet.workdir / "db.sqlite3", 8.0, held)
        )
        lock.start()
        assert held.wait(10)
        answers = []
        while lock.is_alive():
            time.sleep(FRESH_FOR + 0.2)
            answers.append(request(fleet.base_url, path, timeout=20, cookie=cookie))
        lock.join()
    finally:
        fleet.stop()
    for answer in answers:
        assert answer.status == 200
        assert answer.elapsed <= BOUND, f"{answer.elapsed:.2f} s"
        body = answer.json()
        assert not (body["reason"] or "").startswith("database_unavailable"), body
        assert body["status"] == "ok", body  # QuestDB answered: the lock is not its fault
    assert len(answers) >= 3
