"""The app's health view and checks: 503 on failure, each check named, and the failure
detail (hosts, errors) for staff and token holders only (issue 17, item 9: a planted bug
that showed anonymous callers the detail was caught only by questdash's tests)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from resilience.health import BreakerState
from resilience.registry import get_breaker

pytestmark = pytest.mark.django_db

SECRET_DETAIL = "payments.internal:8443"  # a host that the failure detail names
TOKEN = "health-token-for-tests"  # resilience/tests/settings.py's HEALTH_TOKEN


@pytest.fixture
def failing(settings):
    """Breaker "payments" opened by refused connections to a named host."""
    settings.RESILIENCE = {"BREAKERS": {"payments": {}}, "FAILURE_THRESHOLD": 1}
    breaker = get_breaker("payments")
    permit = breaker.acquire()
    breaker.record_failure(
        ConnectionRefusedError(111, f"Connection refused by {SECRET_DETAIL}"), permit
    )
    assert breaker.public_state == "open"


def test_all_well_is_200_and_each_check_is_named(settings):
    settings.RESILIENCE = {"BREAKERS": {"payments": {}}}
    answer = Client().get("/ht/?format=json")
    assert answer.status_code == 200
    assert answer.json() == {"BreakerState": "OK", "CacheRoundTrip(alias='default')": "OK"}


def test_a_failing_check_answers_503_and_names_itself(failing):
    staff = get_user_model().objects.create_user("ops@example.com", "x", is_staff=True)
    client = Client()
    client.force_login(staff)
    answer = client.get("/ht/?format=json")
    assert answer.status_code == 503
    detail = answer.json()
    assert set(detail) == {"BreakerState(all breakers)", "CacheRoundTrip(alias='default')"}
    assert "circuit breaker 'payments' is open" in detail["BreakerState(all breakers)"]
    assert SECRET_DETAIL in detail["BreakerState(all breakers)"]  # staff see why


@pytest.mark.parametrize(
    "params", [{"format": "json"}, {"format": "text"}, {}], ids=["json", "text", "html"]
)
def test_anonymous_callers_get_names_and_statuses_never_the_detail(failing, params):
    answer = Client().get("/ht/", params)
    assert answer.status_code == 503
    body = answer.content.decode()
    assert "BreakerState" in body and "Unavailable" in body
    assert SECRET_DETAIL not in body and "Connection refused" not in body
    assert "payments" not in body  # not even which dependency


def test_the_token_shows_the_detail_in_a_header_never_in_the_query_string(failing):
    bearer = (
        Client()
        .get("/ht/?format=json", headers={"Authorization": f"Bearer {TOKEN}"})
        .content.decode()
    )
    assert SECRET_DETAIL in bearer
    wrong = Client().get("/ht/?format=json", headers={"Authorization": "Bearer nope"})
    assert SECRET_DETAIL not in wrong.content.decode()
    query = Client().get(f"/ht/?format=json&token={TOKEN}")
    assert SECRET_DETAIL not in query.content.decode()


def test_a_signed_in_non_staff_user_gets_no_detail(failing):
    member = get_user_model().objects.create_user("member@example.com", "x")
    client = Client()
    client.force_login(member)
    assert SECRET_DETAIL not in client.get("/ht/?format=json").content.decode()


@pytest.mark.parametrize(
    ("params", "headers", "status", "says"),
    [
        ({"format": "yaml"}, {}, 400, "Unknown format"),
        ({}, {"Accept": "text/html, garbage"}, 400, "Malformed Accept header"),
        ({}, {"Accept": "image/png"}, 406, "Not Acceptable"),
    ],
)
def test_a_bad_request_is_told_what_to_send(params, headers, status, says):
    answer = Client().get("/ht/", params, headers=headers)
    assert answer.status_code == status
    assert answer.json()["error"].startswith(says)


def test_breaker_state_names_the_breaker_it_watches():
    assert repr(BreakerState(name="payments")) == "BreakerState(name='payments')"
    assert repr(BreakerState()) == "BreakerState(all breakers)"
