"""The QuestDB engine's time limits (resilience's database guard, resilience/db/), on QuestDB.

Connect budgets of any length (psycopg will not time out under 2 s), the
watchdog that holds statements and Django's connection check to theirs, and
no attempt at all when no budget is left, on the real QuestDB, blackholed
through Toxiproxy. The watchdog and the bounded connect on their own are
the app's tests (resilience/tests/test_db_watchdog.py, test_db_connect.py).
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections

from questdash.db.guard import questdb_call
from questdash.sections import section
from resilience.db.guard import ConnectTimeout, StatementTimeout
from resilience.errors import DeadlineExceeded, OperationFailed
from resilience.guard import guarded
from resilience.registry import get_breaker

pytestmark = [
    pytest.mark.usefixtures("questdb_server", "fresh_state"),
    pytest.mark.django_db(databases="__all__"),
]

SLACK = 0.15  # the watchdog fires within milliseconds; this allows for a loaded machine


def set_timeouts(settings, **values: float) -> None:
    settings.RESILIENCE = {**settings.RESILIENCE, **values}


def cause_chain(exc: BaseException) -> list[BaseException]:
    chain = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = getattr(exc, "cause", None) or exc.__cause__
    return chain


def timed_failure(fn) -> tuple[BaseException, float]:
    """Run fn as one guarded QuestDB call without retries; its error and how long it took."""
    started = time.monotonic()
    with pytest.raises(OperationFailed) as info:
        questdb_call("test_call", fn, retry=False)
    return info.value, time.monotonic() - started


# --- connects -------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [1.0, 0.5])
def test_a_connect_budget_under_psycopgs_2_s_works_against_a_healthy_questdb(
    settings, connect_attempts, seconds
):
    set_timeouts(settings, CONNECT_TIMEOUT=seconds)
    connections["questdb"].close()
    envelope = section("latest-prices").get()
    assert (envelope.status, envelope.reason) == ("ok", None)
    assert envelope.data
    assert len(connect_attempts) == 1
    snapshot = get_breaker("questdb").snapshot()
    assert (snapshot.public_state, snapshot.failure_count) == ("closed", 0)


def test_a_connect_that_hangs_gives_up_at_its_budget_not_at_psycopgs(settings, questdb_via_proxy):
    set_timeouts(settings, CONNECT_TIMEOUT=0.3)
    questdb_via_proxy.blackhole()
    error, took = timed_failure(connections["questdb"].ensure_connection)
    assert 0.3 <= took < 0.3 + SLACK
    timeouts = [e for e in cause_chain(error) if isinstance(e, ConnectTimeout)]
    assert timeouts and isinstance(timeouts[0], TimeoutError), cause_chain(error)
    assert "QuestDB did not complete the connection within 0.3 s" in str(error)
    # No helper thread waits on under psycopg's own timeout (2 s): the connect ran here.
    assert not any(t.name == "questdb-connect" for t in threading.enumerate())


def spend_the_budget_then(fn) -> OperationFailed:
    """fn after the call's whole budget (0.05 s) is spent; the call's error."""

    def late() -> None:
        time.sleep(0.06)
        fn()

    with pytest.raises(OperationFailed) as info:
        guarded("test_call", late, breaker_name="questdb", retry=False, deadline=0.05)
    return info.value


def never_attempted(error: OperationFailed) -> DeadlineExceeded:
    found = [e for e in cause_chain(error) if isinstance(e, DeadlineExceeded)]
    assert found, cause_chain(error)
    assert found[-1].attempts == 0
    return found[-1]


def test_no_budget_left_means_no_connect_attempt(connect_attempts):
    connections["questdb"].close()
    error = spend_the_budget_then(connections["questdb"].ensure_connection)
    assert never_attempted(error).operation == "questdb.connect"
    assert connect_attempts == []


# --- statements and the connection check ------------------------------------------------


def live_connection_then_blackhole(proxy) -> None:
    connections["questdb"].ensure_connection()
    proxy.blackhole()


def select_one() -> None:
    with connections["questdb"].cursor() as cursor:
        cursor.execute("SELECT 1")


@pytest.mark.parametrize(
    ("query_timeout", "call_deadline", "expected"),
    [(0.4, 4.0, 0.5), (5.0, 0.6, 0.6)],
    ids=["query timeout plus margin", "cut to the call's budget"],
)
def test_a_statement_on_a_silent_connection_ends_at_its_deadline(
    settings, questdb_via_proxy, query_timeout, call_deadline, expected
):
    set_timeouts(settings, QUERY_TIMEOUT=query_timeout, CALL_DEADLINE=call_deadline)
    live_connection_then_blackhole(questdb_via_proxy)
    error, took = timed_failure(select_one)
    assert expected <= took < expected + SLACK
    assert any(isinstance(e, StatementTimeout) for e in cause_chain(error)), cause_chain(error)
    assert connections["questdb"].connection is None  # dropped: the socket is shut


def test_an_executemany_is_held_to_the_calls_budget_not_one_statements(settings, questdb_via_proxy):
    """The server times out each row of a batch: only the call's budget bounds the whole."""
    set_timeouts(settings, QUERY_TIMEOUT=0.1, CALL_DEADLINE=0.6)
    live_connection_then_blackhole(questdb_via_proxy)

    def batch() -> None:
        with connections["questdb"].cursor() as cursor:
            cursor.executemany("SELECT %s", [(n,) for n in range(3)])

    error, took = timed_failure(batch)
    assert 0.6 <= took < 0.6 + SLACK
    assert any(isinstance(e, StatementTimeout) for e in cause_chain(error)), cause_chain(error)


def test_a_connection_check_that_hangs_fails_the_call_instead_of_reconnecting(
    settings, questdb_via_proxy, connect_attempts
):
    set_timeouts(settings, CONNECT_TIMEOUT=0.3)
    live_connection_then_blackhole(questdb_via_proxy)
    connect_attempts.clear()
    connections["questdb"].health_check_done = False  # as at the start of a request
    error, took = timed_failure(select_one)
    assert 0.3 <= took < 0.3 + SLACK  # one check; no connect on top of it
    assert "did not answer the connection check (SELECT 1) within 0.3 s" in str(error)
    assert connect_attempts == []
    assert connections["questdb"].connection is None


def test_outside_a_deadline_a_connection_check_that_hangs_just_says_unusable(
    settings, questdb_via_proxy
):
    set_timeouts(settings, CONNECT_TIMEOUT=0.3)
    live_connection_then_blackhole(questdb_via_proxy)
    started = time.monotonic()
    assert connections["questdb"].is_usable() is False  # as at a request's end
    assert time.monotonic() - started < 0.3 + SLACK
    assert connections["questdb"].connection is None


def test_a_statement_with_no_budget_left_is_never_sent():
    connections["questdb"].ensure_connection()
    error = spend_the_budget_then(select_one)
    assert never_attempted(error).operation == "questdb.select"
    assert connections["questdb"].connection is not None  # nothing went wrong with it
