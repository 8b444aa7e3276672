"""A guarded PostgreSQL alias and the replica router, on a real PostgreSQL.

Two clusters of Debian's postgresql (conftest.py): a primary and a replica,
each with the breaker model's table holding one row that names the server
("primary", "replica"), so every read says where it went. The replica is
stopped (refused), paused (SIGSTOP: accepted, never answered) and cut off
(Toxiproxy: a blackhole); requests keep their budget, and reads move to the
primary while the replica's breaker is open, and come back after.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from resilience.breaker import State
from resilience.checks import database_problems
from resilience.db.guard import ConnectTimeout, StatementTimeout
from resilience.errors import Kind, OperationFailed, classify
from resilience.registry import get_breaker
from testkit.postgres import Reads, database_aliases, faults, guarded_alias

pytestmark = pytest.mark.usefixtures("replica_settings", "unblocked")

SLACK = 0.3  # seconds of scheduling on a loaded 2-core machine


@pytest.fixture
def unblocked(django_db_blocker) -> Iterator[None]:
    """These tests use their own aliases to their own servers, not pytest-django's databases."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def direct(pg_primary, pg_replica) -> Iterator[None]:
    """pg_primary and pg_replica straight to their servers."""
    with database_aliases(
        pg_primary=guarded_alias(pg_primary.port), pg_replica=guarded_alias(pg_replica.port)
    ):
        yield


@pytest.fixture
def proxied(pg_primary, replica_proxy) -> Iterator[None]:
    """pg_replica through Toxiproxy, which can cut it off."""
    with database_aliases(
        pg_primary=guarded_alias(pg_primary.port), pg_replica=guarded_alias(replica_proxy.port)
    ):
        yield


def ask(sql: str, alias: str = "pg_replica") -> list[tuple]:
    with connections[alias].cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def took(fn: Callable[[], object]) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        fn()
    except Exception as exc:  # returned for the test to look at
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


# --- the guarded alias ------------------------------------------------------------------------


@pytest.mark.usefixtures("direct")
def test_the_server_gives_up_on_a_slow_statement_at_the_query_timeout_and_the_connection_lives():
    assert ask("SHOW statement_timeout") == [("500ms",)]
    connection = connections["pg_replica"].connection
    error, seconds = took(lambda: ask("SELECT pg_sleep(3)"))
    assert isinstance(error, OperationFailed), error
    assert classify(error) is Kind.TIMEOUT  # 57014 query_canceled: counted, never retried
    assert 0.5 <= seconds < 0.5 + SLACK
    assert ask("SELECT 1") == [(1,)]
    assert connections["pg_replica"].connection is connection  # no reconnect was needed


@pytest.mark.usefixtures("direct")
def test_a_paused_server_ends_a_statement_at_the_watchdog_and_a_connect_at_its_budget(pg_replica):
    assert ask("SELECT 1") == [(1,)]  # a connection in use when the server stops answering
    with pg_replica.paused():
        error, seconds = took(lambda: ask("SELECT 1"))
        assert any(isinstance(e, StatementTimeout) for e in chain(error)), chain(error)
        assert "PostgreSQL did not answer SELECT within 0.6 s" in str(error)
        assert 0.6 <= seconds < 0.6 + SLACK
        error, seconds = took(connections["pg_replica"].ensure_connection)
        assert any(isinstance(e, ConnectTimeout) for e in chain(error)), chain(error)
        assert 0.5 <= seconds < 0.5 + SLACK
    assert get_breaker("pg_replica").state is State.OPEN  # two timeouts in a row
    assert get_breaker("pg_primary").state is State.CLOSED


def chain(exc: BaseException | None) -> list[BaseException]:
    found: list[BaseException] = []
    while exc is not None and exc not in found:
        found.append(exc)
        exc = getattr(exc, "cause", None) or exc.__cause__
    return found


@pytest.mark.usefixtures("direct")
def test_the_pool_is_refused_with_a_reason(pg_replica):
    pooled = {**guarded_alias(pg_replica.port), "OPTIONS": {"pool": True}}
    with (
        database_aliases(pooled=pooled),
        pytest.raises(ImproperlyConfigured, match="connect around the breaker"),
    ):
        connections["pooled"].ensure_connection()


# --- the router under faults --------------------------------------------------------------------


def ride_out(begin: Callable, end: Callable, seconds: float = 3.0) -> Reads:
    """Requests before, during and after the fault: from the first read the primary gave
    during it, every read of the fault came from the primary; after it, the replica again."""
    reads = Reads()
    reads.run(0.3)
    assert set(reads.sources()) == {"replica"}, reads.sources()
    began, healed = reads.through(begin, end, seconds)
    reads.run(1.0 + 1.0)  # RECOVERY_TIMEOUT, then the router's probe
    during = [answer for started, _, answer in reads.answers if began <= started < healed]
    assert "primary" in during, during
    assert set(during[during.index("primary") :]) == {"primary"}, during
    assert reads.sources()[-1] == "replica", reads.sources(healed)
    return reads


@pytest.mark.parametrize("fault", ["stopped", "paused"])
@pytest.mark.usefixtures("direct")
def test_reads_move_to_the_primary_while_the_replica_is_down_and_come_back(pg_replica, fault):
    begin, end = faults(pg_replica)[fault]
    reads = ride_out(begin, end)
    assert reads.worst < 2.5 + SLACK, reads.answers
    failed = [a for a in reads.sources() if a.startswith("error")]
    assert len(failed) <= 5, failed  # the ones that opened the breaker, no more


@pytest.mark.usefixtures("proxied")
def test_reads_move_to_the_primary_while_the_replica_is_cut_off(pg_replica, replica_proxy):
    begin, end = faults(pg_replica, replica_proxy)["cut off"]
    reads = ride_out(begin, end)
    assert reads.worst < 2.5 + SLACK, reads.answers
    assert len([a for a in reads.sources() if a.startswith("error")]) <= 2  # two timeouts


def test_a_replica_that_is_not_guarded_fails_the_system_check():
    databases = {
        "pg_primary": {"ENGINE": "django.db.backends.postgresql"},
        "pg_replica": {"ENGINE": "django.db.backends.postgresql"},
    }
    config = {"READ_REPLICAS": ["pg_replica", "nowhere"], "PRIMARY_DATABASE": "pg_primary"}
    messages = [message for _, message, _ in database_problems(config, databases)]
    assert len(messages) == 2, messages
    assert "DATABASES['pg_replica'] is a read replica but its ENGINE is not guarded" in messages[0]
    assert "'nowhere', which is not in settings.DATABASES" in messages[1]
    guarded = {**databases, "pg_replica": {"ENGINE": "resilience.db.backends.postgresql"}}
    assert database_problems({**config, "READ_REPLICAS": ["pg_replica"]}, guarded) == []
