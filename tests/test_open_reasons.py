"""Issue 17 item 7: while the breaker is open, every reason staff see says what opened it.

Against the real QuestDB, with a setting a person got wrong: a wrong
``QUESTDB_PASSWORD`` and a ``QUESTDB_HOST`` that does not resolve. The API's
reason, the dashboard's banner and a changelist's banner each say it in
words, scrubbed, and a rejected login is never retried (the same password
fails the same way) but counts towards opening the breaker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.db import connections
from django.test import Client

from resilience.registry import get_breaker

from .settings import TEST_ENV

pytestmark = [pytest.mark.usefixtures("questdb_server"), pytest.mark.django_db(databases="__all__")]

PASSWORD = TEST_ENV["QUESTDB_PASSWORD"]
API = "/api/dashboard/positions/"
DASHBOARD = "/admin/questdash/dashboard/"
PRICES = "/admin/questdash/price/"
THRESHOLD = 5


@pytest.fixture
def staff(fresh_state, django_user_model) -> Client:
    user = django_user_model.objects.create_superuser("boss", password="x")
    client = Client()
    client.force_login(user)
    for path in (DASHBOARD, PRICES):  # every copy made, with the right settings
        assert client.get(path).status_code == 200
    return client


@pytest.fixture
def misconfigure(settings) -> Iterator[Callable[..., None]]:
    """Change the "questdb" alias (and the settings its words come from) for the test."""
    alias = connections.settings["questdb"]
    original = dict(alias)

    def change(**values: str) -> None:
        connections["questdb"].close()
        alias.update(values)
        settings.QUESTDB_HOST = alias["HOST"]

    yield change
    connections["questdb"].close()
    alias.clear()
    alias.update(original)
    get_breaker("questdb").reset()


def until_open(staff: Client) -> dict:
    for _ in range(THRESHOLD):
        staff.get(API)
    assert get_breaker("questdb").public_state == "open"
    body = staff.get(API).json()
    assert body["status"] == "degraded", body
    return body


def the_staff_pages_say(staff: Client, words: str) -> None:
    for path in (DASHBOARD, PRICES):
        html = staff.get(path).content.decode().replace("&#x27;", "'")
        assert words in html, f"{path} does not say {words!r}"
        assert PASSWORD not in html and "circuit_open" not in html


def test_a_wrong_password_is_said_not_retried_and_opens_the_breaker(
    staff, misconfigure, connect_attempts
):
    misconfigure(PASSWORD="not-the-password")
    words = "QuestDB rejected the login for user admin: check QUESTDB_PASSWORD"
    connect_attempts.clear()
    first = staff.get(API).json()
    assert first["status"] == "degraded"
    assert first["reason"] == f"database_unavailable: {words}"
    assert len(connect_attempts) == 1, "a rejected login was tried again"
    body = until_open(staff)
    assert len(connect_attempts) == THRESHOLD, "the breaker did not count the rejected logins"
    assert body["reason"].startswith("circuit_open: Failed to get_positions: circuit breaker")
    assert body["reason"].endswith(f"; opened by: {words}")
    assert "not-the-password" not in body["reason"] and PASSWORD not in body["reason"]
    the_staff_pages_say(staff, words)


def test_a_host_that_does_not_resolve_is_named(staff, misconfigure):
    misconfigure(HOST="questdb.invalid")
    words = "QuestDB's host questdb.invalid was not found: check QUESTDB_HOST"
    assert staff.get(API).json()["reason"] == f"database_unavailable: {words}"
    body = until_open(staff)
    assert body["reason"].endswith(f"; opened by: {words}")
    the_staff_pages_say(staff, words)
