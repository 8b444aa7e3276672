"""Network faults for the operations tests: a real Toxiproxy in front of the real QuestDB.

The root conftest.py starts QuestDB and Redis; here Toxiproxy (once per
session) and, per test, a proxy to QuestDB that the "questdb" alias is
pointed at, so a test can blackhole QuestDB without touching the server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import psycopg
import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connections

from conftest import free_port
from questdash import localdb
from resilience.breaker import all_breakers
from resilience.health import settle_probes
from resilience.logs import reset_summaries

from .fleet import Fleet
from .toxiproxy import Proxy, Toxiproxy


@pytest.fixture(autouse=True)
def fresh_log_summaries() -> None:
    """Each test's first failure of a kind is logged at its level, as in a new process."""
    reset_summaries()


@pytest.fixture(scope="session")
def toxiproxy() -> Iterator[Toxiproxy]:
    server = Toxiproxy(port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def questdb_proxy(toxiproxy: Toxiproxy, questdb_server) -> Iterator[Proxy]:
    """A proxy to the test QuestDB; the test decides who connects through it."""
    proxy = toxiproxy.proxy(
        "questdb", free_port(), f"{settings.QUESTDB_HOST}:{settings.QUESTDB_PORT}"
    )
    yield proxy
    proxy.delete()


@pytest.fixture(scope="module")
def fleet_proxy(toxiproxy: Toxiproxy, questdb_server) -> Iterator[Proxy]:
    """A proxy to the test QuestDB of its own, for a fleet that outlives one test."""
    upstream = f"{settings.QUESTDB_HOST}:{settings.QUESTDB_PORT}"
    proxy = toxiproxy.proxy("questdb_fleet", free_port(), upstream)
    yield proxy
    proxy.delete()


@pytest.fixture(scope="module")
def fleet(fleet_proxy: Proxy, redis_server, tmp_path_factory) -> Iterator[Fleet]:
    """The site on gunicorn with 4 workers, QuestDB through ``fleet_proxy``, Redis shared.

    Product settings (tests/fleet_settings.py), except a one-second recovery
    timeout so that a test sees the breaker heal. Its log is JSON lines and
    never holds the QuestDB password.
    """
    url = redis_server.url.rsplit("/", 1)[0] + "/5"
    redis.Redis.from_url(url).flushdb()
    server = Fleet(
        workdir=tmp_path_factory.mktemp("fleet"),
        questdb_port=fleet_proxy.port,
        redis_url=url,
        extra_env={"RESILIENCE_RECOVERY_TIMEOUT": "1"},
    )
    server.start()
    yield server
    server.stop()
    log = server.log.read_text()
    assert settings.QUESTDB_PASSWORD not in log
    for line in log.splitlines():  # gunicorn's own lines included
        assert isinstance(json.loads(line), dict), line


@pytest.fixture
def questdb_via_proxy(questdb_proxy: Proxy) -> Iterator[Proxy]:
    """This process's "questdb" alias goes through the proxy (every thread, new connections)."""
    alias = connections.settings["questdb"]
    original = alias["PORT"]
    connections["questdb"].close()
    alias["PORT"] = questdb_proxy.port
    yield questdb_proxy
    questdb_proxy.heal()
    connections["questdb"].close()
    alias["PORT"] = original


@pytest.fixture
def connect_attempts(monkeypatch) -> list[float]:
    """Counts real connection attempts to QuestDB (each still goes to the network)."""
    attempts: list[float] = []
    real_connect = psycopg.connect

    def counting_connect(*args, **kwargs):
        attempts.append(time.monotonic())
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(psycopg, "connect", counting_connect)
    return attempts


@pytest.fixture
def fresh_state(settings) -> Iterator[None]:
    """QuestDB up, an empty cache, closed breakers, fast retries, no young-copy shortcut;
    and no health probe left over afterwards."""
    settings.DASHBOARD_FRESH_FOR = 0
    settings.RESILIENCE = {**settings.RESILIENCE, "RETRY_WAITS": (0.01, 0.02), "CALL_DEADLINE": 4.0}
    if not localdb.status().running:
        localdb.start()
    cache.clear()
    for breaker in all_breakers():
        breaker.reset()
    yield
    assert settle_probes(10), "a QuestDB health probe is still hanging"
