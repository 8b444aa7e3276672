"""Fixtures for the app's own suite: a fake clock, breakers on it, JSON log capture, Redis.

The suite runs on resilience/tests/settings.py (its pytest.ini), without
questdash: the repository's root conftest.py is not loaded, and the session
fails if anything imported questdash.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache.backends.locmem import LocMemCache

from resilience.breaker import CircuitBreaker
from resilience.clock import FakeClock
from resilience.conf import get_config
from resilience.logs import reset_summaries
from resilience.registry import reset_registry
from resilience.sharedcache import reset_shared_caches
from resilience.stores import BreakerStore, CacheStore, LocalStore
from testkit import fixtures
from testkit.ports import free_port
from testkit.postgres import PostgresServer, running_postgres
from testkit.toxiproxy import Proxy, Toxiproxy

redis_server = fixtures.redis_server  # the session's Redis and Toxiproxy, shared by both suites
redis_url = fixtures.redis_url
toxiproxy = fixtures.toxiproxy


@pytest.fixture(scope="session", autouse=True)
def no_questdash() -> Iterator[None]:
    """The app is tested as the app it is: nothing here may import the project around it."""
    yield
    leaked = sorted(name for name in sys.modules if name.split(".")[0] == "questdash")
    assert not leaked, f"the app's suite imported questdash: {leaked[:5]}"


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    """Each test starts as a new process would: no breakers, no gates, no log summaries."""
    reset_registry()
    reset_shared_caches()
    reset_summaries()
    get_config.cache_clear()
    yield
    reset_registry()
    reset_shared_caches()
    get_config.cache_clear()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def store_of(kind: str, clock: FakeClock) -> BreakerStore:
    """A store of each kind the app has: every state test runs on both (axes runs its handler
    tests on every handler; pybreaker its tests through a storage mixin)."""
    if kind == "local":
        return LocalStore(clock=clock)
    cache = LocMemCache(f"resilience-state-{next(_caches)}", {"TIMEOUT": None})
    return CacheStore(cache=cache, clock=clock, sync_interval=0, success_interval=0,
                      recover_inline=True)  # fmt: skip


_caches = itertools.count()


@pytest.fixture(params=["local", "cache"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_breaker(clock: FakeClock, store_kind: str) -> Callable[..., CircuitBreaker]:
    """A breaker on the fake clock with small numbers: threshold 3, recovery 10 s."""

    def make(name: str = "db", **kwargs: Any) -> CircuitBreaker:
        kwargs.setdefault("failure_threshold", 3)
        kwargs.setdefault("recovery_timeout", 10.0)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("store", store_of(store_kind, clock))
        return CircuitBreaker(name, **kwargs)

    return make


class Events:
    """The JSON events logged under ``resilience``, parsed from the messages."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    @property
    def records(self) -> list[logging.LogRecord]:
        return [r for r in self._caplog.records if r.name.startswith("resilience")]

    def of(self, event_type: str) -> list[dict[str, Any]]:
        found = []
        for record in self.records:
            payload = json.loads(record.getMessage())
            assert set(payload) == {"event_type", "data"}, payload
            if payload["event_type"] == event_type:
                found.append(payload["data"])
        return found

    def types(self) -> list[str]:
        return [json.loads(r.getMessage())["event_type"] for r in self.records]


@pytest.fixture
def events(caplog: pytest.LogCaptureFixture) -> Events:
    caplog.set_level(logging.DEBUG, logger="resilience")
    return Events(caplog)


def connection_refused() -> ConnectionRefusedError:
    return ConnectionRefusedError(111, "Connection refused")


def fail(exc: BaseException | None = None) -> Callable[[], Any]:
    def call() -> Any:
        raise exc if exc is not None else connection_refused()

    return call


def outcomes(breaker: CircuitBreaker, sequence: str) -> None:
    """Calls through ``breaker``: '.' a success, 'x' a refused connection."""
    for outcome in sequence:
        if outcome == ".":
            breaker.call(lambda: None)
        else:
            with pytest.raises(ConnectionRefusedError):
                breaker.call(fail())


SOCKET_TIMEOUT = 0.3  # seconds a paused Redis costs one command of ``shared_store``'s cache


def as_a_new_process() -> None:
    """Forget this process's breakers and cache gates, as a process that starts now."""
    reset_registry()
    reset_shared_caches()


@pytest.fixture
def shared_store(settings, redis_server) -> Iterator[str]:
    """Breakers shared through a Redis database of their own (short socket timeouts, a store
    that went away tried again after 0.2 s), and the breaker "payments" named in settings."""
    url = redis_server.fresh_database(9)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {
                "socket_timeout": SOCKET_TIMEOUT,
                "socket_connect_timeout": SOCKET_TIMEOUT,
            },
        }
    }
    settings.RESILIENCE = {
        "STORE": "resilience.stores.CacheStore",
        "STORE_OPTIONS": {"OUTAGE_RETRY_INTERVAL": 0.2},
        "BREAKERS": {"payments": {}},
    }
    yield url
    as_a_new_process()


# --- a real PostgreSQL: a primary and a replica, and guarded aliases to them -----------------

PG_ALIASES = ("pg_primary", "pg_replica")


def _cluster(source: str) -> Iterator[PostgresServer]:
    """A cluster whose database ``app`` has the breaker model's table, with one row that
    says which server answered (``source``)."""
    with running_postgres() as server:
        server.execute("CREATE DATABASE app")
        server.execute(
            "CREATE TABLE resilience_circuitbreaker (name varchar(100) PRIMARY KEY);"
            f"INSERT INTO resilience_circuitbreaker VALUES ('{source}')",
            "app",
        )
        yield server


@pytest.fixture(scope="session")
def pg_primary() -> Iterator[PostgresServer]:
    yield from _cluster("primary")


@pytest.fixture(scope="session")
def pg_replica() -> Iterator[PostgresServer]:
    yield from _cluster("replica")


@pytest.fixture
def replica_proxy(toxiproxy: Toxiproxy, pg_replica: PostgresServer) -> Iterator[Proxy]:
    proxy = toxiproxy.proxy("pg_replica", free_port(), f"127.0.0.1:{pg_replica.port}")
    yield proxy
    proxy.delete()


@pytest.fixture
def replica_settings(settings) -> Any:
    """The router on, reads to pg_replica, small budgets; the breakers in this process."""
    settings.DATABASE_ROUTERS = ["resilience.db.router.ReplicaRouter"]
    settings.RESILIENCE = {
        "STORE": "resilience.stores.LocalStore",
        "READ_REPLICAS": ["pg_replica"],
        "PRIMARY_DATABASE": "pg_primary",
        "CONNECT_TIMEOUT": 0.5,
        "QUERY_TIMEOUT": 0.5,
        "CALL_DEADLINE": 1.0,
        "REQUEST_DEADLINE": 2.5,
        "RETRY_WAITS": (0.01,),
        "RECOVERY_TIMEOUT": 1.0,
    }
    return settings
