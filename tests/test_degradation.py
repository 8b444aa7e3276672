"""Graceful degradation end to end, against the real QuestDB (the story's undone item).

QuestDB is really stopped or paused here; the breaker, retry, fallback,
middleware and pages are the real ones, driven through Django's test client.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import signal
import threading
import time

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import connections
from django.test import Client
from django.urls import reverse

from questdash import dashboard, localdb
from resilience.conf import breaker_config
from resilience.fallback import CachedFallback
from resilience.registry import get_breaker
from testkit.processes import pause_process

from .settings import TEST_ENV

pytestmark = [pytest.mark.usefixtures("questdb_server"), pytest.mark.django_db(databases="__all__")]

PASSWORD = TEST_ENV["QUESTDB_PASSWORD"]
API = "/api/dashboard/{}/"
DASHBOARD = "/admin/questdash/dashboard/"
BREAKERS = "/admin/resilience/circuitbreaker/"
SECTIONS = ["active-sessions", "latest-prices", "positions", "price-history"]


@pytest.fixture(autouse=True)
def _quick_recovery(quick_recovery):
    """Every test here: fresh_state and a one-second recovery timeout (tests/conftest.py)."""


def make_user(django_user_model, name, *, staff=True, perms=()):
    user = django_user_model.objects.create_user(name, password="x", is_staff=staff)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


@pytest.fixture
def staff(django_user_model):
    user = make_user(
        django_user_model,
        "staff",
        perms=["view_dashboard", "view_circuitbreaker", "control_circuitbreaker"],
    )
    client = Client()
    client.force_login(user)
    return client


def get_json(client, name):
    response = client.get(API.format(name))
    assert PASSWORD not in response.content.decode()
    return response, response.json()


def test_ok_path_serves_fresh_rows_for_every_section(staff):
    for name in SECTIONS:
        response, body = get_json(staff, name)
        assert response.status_code == 200, body
        assert body["status"] == "ok"
        assert body["reason"] is None
        assert body["breaker"] == "closed"
        assert body["cached_at"].endswith("+00:00")
        assert body["data"], name
        assert response["X-Circuit-Breaker"] == "questdb=closed"
    _, sessions = get_json(staff, "active-sessions")
    assert [s["session_id"] for s in sessions["data"]] == [
        s["session_id"] for s in dashboard.get_active_sessions()
    ]


def test_stopped_questdb_serves_the_last_good_copy(staff, caplog):
    caplog.set_level(logging.DEBUG)
    _, fresh = get_json(staff, "positions")
    localdb.stop()

    response, body = get_json(staff, "positions")
    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["data"] == fresh["data"]
    assert body["cached_at"] == fresh["cached_at"]
    assert body["reason"].startswith("database_unavailable: Failed to get_positions:")
    served = [r for r in caplog.records if "resilience.fallback.served" in r.getMessage()]
    assert served, "serving the cached copy is logged with its age"
    assert PASSWORD not in caplog.text

    page = staff.get(DASHBOARD)
    html = page.content.decode()
    assert page.status_code == 200
    assert "QuestDB unavailable: showing data from" in html
    assert re.search(r"\d+ seconds? old</span>\.", html)  # an age the page counts on
    assert PASSWORD not in html


def test_no_copy_means_error_503_with_retry_after(staff):
    localdb.stop()
    response, body = get_json(staff, "latest-prices")
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1
    assert body["status"] == "error"
    assert body["data"] is None
    assert body["cached_at"] is None
    assert body["reason"]


def test_breaker_opens_at_threshold_then_no_connection_reaches_questdb(staff, connect_attempts):
    threshold = get_breaker("questdb").snapshot().failure_threshold
    get_json(staff, "latest-prices")  # a copy to fall back on
    localdb.stop()
    connections["questdb"].close()  # so that every attempt is a connect, and counted
    connect_attempts.clear()
    for _ in range(threshold):
        _, body = get_json(staff, "latest-prices")
        assert body["status"] == "degraded"
    assert get_breaker("questdb").public_state == "open"
    attempts = breaker_config("questdb")["RETRY_ATTEMPTS"]
    assert len(connect_attempts) == threshold * attempts  # each call tried, and retried

    connect_attempts.clear()
    for _ in range(10):
        response, body = get_json(staff, "latest-prices")
        assert body["status"] == "degraded"
        assert body["breaker"] == "open"
        assert body["reason"].startswith("circuit_open:")
        assert response["X-Circuit-Breaker"] == "questdb=open"
    assert connect_attempts == []


def test_recovery_closes_the_breaker_and_status_returns_to_ok(staff):
    get_json(staff, "active-sessions")
    localdb.stop()
    breaker = get_breaker("questdb")
    while breaker.public_state != "open":
        get_json(staff, "active-sessions")
    localdb.start()
    time.sleep(1.1)  # the test's recovery timeout: the next call is the probe
    _, body = get_json(staff, "active-sessions")
    assert body["status"] == "ok"
    assert body["breaker"] == "closed"
    assert breaker.public_state == "closed"


def test_the_dashboard_page_stops_asking_once_questdb_is_found_down(staff, connect_attempts):
    for name in SECTIONS:
        get_json(staff, name)
    localdb.stop()
    connections["questdb"].close()  # so that every attempt is a connect, and counted
    connect_attempts.clear()
    html = staff.get(DASHBOARD).content.decode()
    assert connect_attempts and len(connect_attempts) == breaker_config("questdb")["RETRY_ATTEMPTS"]
    assert html.count("pill status-degraded") == len(SECTIONS)


def test_a_bad_query_is_a_django_error_not_an_outage(staff):
    from django.db import DatabaseError

    from questdash.models import Price
    from resilience.errors import GuardedCallError

    with pytest.raises(DatabaseError, match="Invalid column: no_such_column") as info:
        list(Price.objects.raw("SELECT no_such_column FROM prices"))
    assert not isinstance(info.value, GuardedCallError)  # Django's own error, as any backend
    response = staff.get("/admin/questdash/dashboard/")
    assert response.status_code == 200
    snapshot = get_breaker("questdb").snapshot()
    assert (snapshot.public_state, snapshot.failure_count) == ("closed", 0)


def test_redis_down_while_questdb_is_up_still_serves_fresh_data(settings, staff, redis_server):
    redis_cache = {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                   "LOCATION": redis_server.url,
                   "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}  # fmt: skip
    settings.CACHES = {**settings.CACHES, "default": redis_cache}
    assert get_json(staff, "latest-prices")[1]["status"] == "ok"
    redis_server.stop()
    try:
        response, body = get_json(staff, "latest-prices")
    finally:
        redis_server.start()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert body["data"]


def test_questdb_start_command_closes_a_breaker_left_open(staff):
    from django.core.management import call_command

    get_json(staff, "positions")
    localdb.stop()
    while get_breaker("questdb").public_state != "open":
        get_json(staff, "positions")
    call_command("questdb", "start")
    assert get_breaker("questdb").public_state == "closed"
    assert get_json(staff, "positions")[1]["status"] == "ok"


def test_paused_questdb_does_not_hang_a_request(staff):
    get_json(staff, "positions")
    pid = localdb.status().pid
    pause_process(pid)
    try:
        started = time.monotonic()
        _, body = get_json(staff, "positions")
        elapsed = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert body["status"] == "degraded", (body["status"], body["reason"], f"{elapsed:.2f} s")
    assert elapsed < 4.0 + 1.5, f"took {elapsed:.1f} s, over the call deadline"


def test_a_failure_never_overwrites_the_copy_and_an_empty_answer_is_told(settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "FAILURE_THRESHOLD": 100}
    rows = [[{"a": 1}], [], RuntimeError("boom")]

    def loader():
        value = rows.pop(0)
        if isinstance(value, Exception):
            raise value
        return value

    query = CachedFallback("overwrite_test", loader, breaker_name="overwrite_test", fresh_for=0)
    assert query.get().data == [{"a": 1}]
    empty = query.get()
    assert (empty.status, empty.data) == ("ok", [])
    failed = query.get()
    assert failed.status == "degraded"
    assert failed.data == [{"a": 1}]
    # The rows shown are older than the last answer (empty): the reason says so.
    assert failed.reason.startswith("query_error: Failed to get_overwrite_test: boom; ")
    assert "the database's last answer, at " in failed.reason
    assert failed.reason.endswith(f"had no rows: showing the rows from {at(failed.cached_at)}")
    copy = query.last_good()
    assert copy.data == [{"a": 1}] and copy.empty == []
    assert copy.answered_at > copy.cached_at == failed.cached_at


def at(moment) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def test_a_true_empty_answer_is_trusted_and_told(staff):
    """Every session stops: QuestDB really answers "no active sessions". That answer is
    fresh (health and burst collapsing follow it); in the next outage the last sessions
    seen are shown, saying that QuestDB's last answer, newer than them, had none."""
    from django.core.management import call_command

    from resilience.health import FallbackFreshness

    _, before = get_json(staff, "active-sessions")
    assert before["status"] == "ok" and before["data"]
    time.sleep(1.5)  # the rows' copy grows older than the health limit below
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    stopped = [(s["session_id"], s["name"], s["strategy"], "stopped", now) for s in before["data"]]
    try:
        with connections["questdb"].cursor() as cursor:
            cursor.executemany(
                "INSERT INTO trading_sessions (session_id, name, strategy, status, ts)"
                " VALUES (%s, %s, %s, %s, %s)",
                stopped,
            )
        deadline = time.monotonic() + 10
        while dashboard.get_active_sessions():  # rows written to a WAL table show up later
            assert time.monotonic() < deadline, "QuestDB did not apply the stopped rows"
            time.sleep(0.05)
        _, empty = get_json(staff, "active-sessions")
        assert (empty["status"], empty["data"], empty["reason"]) == ("ok", [], None)
        assert empty["cached_at"] > before["cached_at"]
        FallbackFreshness(query="active_sessions", max_age=1.0).run()  # raises when stale
        localdb.stop()
        response, outage = get_json(staff, "active-sessions")
        assert response.status_code == 200
        assert (outage["status"], outage["data"]) == ("degraded", before["data"])
        assert outage["cached_at"] == before["cached_at"]
        answered = datetime.datetime.fromisoformat(empty["cached_at"])
        shown = datetime.datetime.fromisoformat(before["cached_at"])
        assert outage["reason"].endswith(
            f"; QuestDB's last answer, at {at(answered)}, had no rows: "
            f"showing the rows from {at(shown)}"
        ), outage["reason"]
        page = staff.get(DASHBOARD).content.decode()
        assert f"QuestDB&#x27;s last answer, at {at(answered)}, had no rows" in page
    finally:
        localdb.start()
        call_command("questdb", "seed", verbosity=0)  # the demo's sessions, for the others


def test_many_requests_missing_at_once_make_one_query(settings, redis_url):
    redis_cache = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}
    settings.CACHES = {**settings.CACHES, "shared": redis_cache}
    calls = []

    def slow_loader():
        calls.append(1)
        time.sleep(0.3)
        return [{"n": len(calls)}]

    query = CachedFallback("burst", slow_loader, breaker_name="burst", cache_alias="shared")
    results = []
    threads = [threading.Thread(target=lambda: results.append(query.get())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert [r.status for r in results] == ["ok"] * 8
    assert {r.data[0]["n"] for r in results} == {1}


def test_a_failure_escaping_a_view_becomes_a_degraded_response(settings, staff):
    settings.ROOT_URLCONF = "tests.urls"
    localdb.stop()
    html = staff.get("/test/escape/")
    assert html.status_code == 503
    assert "Retry-After" in html
    assert "A data source is unavailable" in html.content.decode()
    api = staff.get("/api/test/escape/")
    assert api.status_code == 503
    assert api.json()["status"] == "error"
    assert api.json()["reason"]
    assert PASSWORD not in html.content.decode() + api.content.decode()


# --- who may do what ---------------------------------------------------------------


def test_breaker_actions_need_post_and_csrf_and_are_logged(django_user_model):
    user = make_user(django_user_model, "operator", perms=["view_circuitbreaker",
                                                           "control_circuitbreaker"])  # fmt: skip
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    get_breaker("questdb")
    url = f"{BREAKERS}questdb/force-open/"
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 403  # no CSRF token
    page = client.get(BREAKERS)
    assert page.status_code == 200
    token = page.cookies["csrftoken"].value
    response = client.post(url, {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert get_breaker("questdb").public_state == "open"
    entry = LogEntry.objects.get(user=user)
    assert "questdb" in entry.change_message and "Forced open" in entry.change_message
    assert (
        client.post(f"{BREAKERS}questdb/reset/", {"csrfmiddlewaretoken": token}).status_code == 302
    )
    assert get_breaker("questdb").public_state == "closed"
    assert LogEntry.objects.filter(user=user).count() == 2


def test_breaker_page_shows_state_error_and_transitions(staff):
    get_json(staff, "positions")
    localdb.stop()
    while get_breaker("questdb").public_state != "open":
        get_json(staff, "positions")
    html = staff.get(BREAKERS).content.decode()
    assert 'cb-pill cb-open">open' in html
    assert "OperationalError: connection failed" in html
    assert "closed</td><td>open" in html.replace("\n", "")
    assert PASSWORD not in html
    assert reverse("admin:resilience_circuitbreaker_action", args=["questdb", "reset"]) in html
