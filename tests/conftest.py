"""Network faults for the operations tests: a real Toxiproxy in front of the real QuestDB.

The root conftest.py starts QuestDB, Redis and Toxiproxy; here, per test, a
proxy to QuestDB that the "questdb" alias is pointed at, so a test can
blackhole QuestDB without touching the server.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db import connections
from django.test import Client

from questdash import localdb
from resilience.db.connect import BoundedConnection
from resilience.health import settle_probes
from resilience.logs import reset_summaries
from resilience.registry import all_breakers
from testkit.fleet import Fleet
from testkit.ports import free_port
from testkit.toxiproxy import Proxy, Toxiproxy


@pytest.fixture(autouse=True)
def fresh_log_summaries() -> None:
    """Each test's first failure of a kind is logged at its level, as in a new process."""
    reset_summaries()


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


@contextlib.contextmanager
def running(*servers: Fleet) -> Iterator[None]:
    """The fleets started (at once: logins and boots side by side), and stopped after;
    each log is JSON lines and never holds the QuestDB password."""
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(Fleet.start, servers))
        yield
    finally:
        for server in servers:
            server.stop()
    for server in servers:
        log = server.log.read_text()
        assert settings.QUESTDB_PASSWORD not in log
        for line in log.splitlines():  # gunicorn's own lines included
            assert isinstance(json.loads(line), dict), line


@pytest.fixture(scope="module")
def fleet(fleet_proxy: Proxy, redis_server, tmp_path_factory) -> Iterator[Fleet]:
    """The site on gunicorn with 4 workers, QuestDB through ``fleet_proxy``, Redis shared.

    Product settings (tests/fleet_settings.py), except a one-second recovery
    timeout so that a test sees the breaker heal.
    """
    server = Fleet(
        workdir=tmp_path_factory.mktemp("fleet"),
        questdb_port=fleet_proxy.port,
        redis_url=redis_server.fresh_database(5),
        extra_env={"RESILIENCE_RECOVERY_TIMEOUT": "1"},
    )
    with running(server):
        yield server


SKEW = 600  # seconds: how far ahead the fast host's clock runs


@pytest.fixture(scope="module")
def two_hosts(fleet_proxy: Proxy, redis_server, tmp_path_factory) -> Iterator[tuple[Fleet, Fleet]]:
    """Two hosts sharing one Redis and QuestDB (through ``fleet_proxy``): gunicorn on the
    true clock, and gunicorn under Debian's faketime, ``SKEW`` seconds ahead. Two
    workers each; a copy is served without asking QuestDB while younger than 1 s,
    and an open lasts 2 s (tests/test_redis_fleet.py's FRESH_FOR and RECOVERY)."""
    faketime = shutil.which("faketime")
    assert faketime, "faketime not found: apt-get install faketime (scripts/test.sh does)"
    url = redis_server.fresh_database(6)
    env = {"RESILIENCE_RECOVERY_TIMEOUT": "2", "DASHBOARD_FRESH_FOR": "1"}
    hosts = [
        Fleet(workdir=tmp_path_factory.mktemp(name), questdb_port=fleet_proxy.port,
              redis_url=url, workers=2, extra_env=env, prefix=prefix)
        for name, prefix in (("true-host", []), ("fast-host", [faketime, "-f", f"+{SKEW}s"]))
    ]  # fmt: skip
    with running(*hosts):
        yield hosts[0], hosts[1]


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
    real_connect = BoundedConnection.connect  # what the guarded engines connect with

    def counting_connect(*args, **kwargs):
        attempts.append(time.monotonic())
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(BoundedConnection, "connect", counting_connect)
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


@pytest.fixture
def staff(django_user_model) -> Client:
    """A logged-in staff client with the dashboard's view permission (and nothing else)."""
    user = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def quick_recovery(fresh_state, settings):
    """fresh_state, and a one-second recovery timeout; QuestDB running again afterwards."""
    settings.RESILIENCE = {**settings.RESILIENCE, "RECOVERY_TIMEOUT": 1.0}
    yield
    if not localdb.status().running:
        localdb.start()
