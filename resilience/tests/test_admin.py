"""The breaker page: who may look and act, what it lists, and actions confirmed or refused.

On the suite's custom user model (no ``username``), and on a real Redis that
is paused with SIGSTOP to make a button's action that cannot land.
"""

from __future__ import annotations

import time

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from resilience.registry import get_breaker
from resilience.state import State

from .conftest import as_a_new_process

pytestmark = pytest.mark.django_db

PAGE = "/admin/resilience/circuitbreaker/"


def action_url(name: str, action: str) -> str:
    return f"{PAGE}{name}/{action}/"


def staff(*permissions: str) -> Client:
    user = get_user_model().objects.create_user(
        f"{'-'.join(permissions) or 'nobody'}@example.com", "x", is_staff=True
    )
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client(enforce_csrf_checks=False)
    client.force_login(user)
    return client


@pytest.fixture
def operator() -> Client:
    return staff("view_circuitbreaker", "control_circuitbreaker")


def messages_of(response) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in response.context["messages"]]


def test_the_page_lists_the_breakers_named_in_settings(operator, settings):
    settings.RESILIENCE = {"BREAKERS": {"payments": {}, "search": {}}}
    page = operator.get(PAGE)
    assert page.status_code == 200
    names = [card.name for card in page.context["cards"]]
    assert names == ["payments", "search"]
    assert page.context["can_control"] is True


def test_who_may_look_and_who_may_act(settings):
    settings.RESILIENCE = {"BREAKERS": {"payments": {}}}
    assert Client().get(PAGE).status_code == 302  # to the login
    assert staff().get(PAGE).status_code == 403
    viewer = staff("view_circuitbreaker")
    assert viewer.get(PAGE).status_code == 200
    assert viewer.post(action_url("payments", "force-open")).status_code == 403
    operator = staff("view_circuitbreaker", "control_circuitbreaker")
    assert operator.get(action_url("payments", "force-open")).status_code == 405
    assert operator.post(action_url("nope", "force-open")).status_code == 404
    assert operator.post(action_url("payments", "explode")).status_code == 404
    assert get_breaker("payments").state is State.CLOSED
    assert not LogEntry.objects.exists()


def test_a_button_whose_decision_landed_says_so_and_is_logged(operator, shared_store):
    done = operator.post(action_url("payments", "force-open"), {"reason": "upgrade"}, follow=True)
    assert messages_of(done) == [
        ("success", "Breaker payments: Forced open: every call fails fast "
                    "(was closed, now open). Reason: upgrade")
    ]  # fmt: skip
    entry = LogEntry.objects.get()
    assert entry.change_message.startswith("payments: Forced open")
    assert entry.user.email == "force-open@example.com" or entry.user.is_staff
    as_a_new_process()
    assert get_breaker("payments").state is State.OPEN  # in the store, for every process


def test_a_button_while_redis_is_paused_shows_an_error_and_logs_nothing(
    operator, shared_store, redis_server
):
    assert operator.get(PAGE).status_code == 200  # the store read while Redis answers
    with redis_server.paused():
        answer = operator.post(action_url("payments", "force-open"), {"reason": "upgrade"})
    assert answer.status_code == 302
    time.sleep(0.3)  # past the outage retry interval: the store answers again
    page = operator.get(PAGE)
    (level, message), *_ = messages_of(page)
    assert level == "error"
    assert message.startswith("Breaker payments: Not done: forced open did not reach the shared")
    assert not LogEntry.objects.exists()
    assert get_breaker("payments").state is State.CLOSED  # withdrawn here...
    as_a_new_process()
    assert get_breaker("payments").state is State.CLOSED  # ...and never in the store


def test_with_the_in_process_store_a_button_says_this_process_only(operator, settings):
    settings.RESILIENCE = {"BREAKERS": {"payments": {}}}
    done = operator.post(action_url("payments", "force-open"), follow=True)
    ((level, message),) = messages_of(done)
    assert level == "success"
    assert message.endswith("In this process only: the breaker's store is not shared.")
    assert get_breaker("payments").state is State.OPEN
