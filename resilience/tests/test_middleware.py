"""The breaker middleware: a dependency failure that escapes a view is a degraded answer,
JSON or HTML by the client's Accept header and RESILIENCE["JSON_PATHS"], with or without
the admin installed; a bug stays a 500."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from resilience.registry import get_breaker

pytestmark = pytest.mark.django_db

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_a_browser_gets_the_degraded_page_with_the_admin_look():
    answer = Client().get("/refused/", headers={"Accept": BROWSER})
    assert answer.status_code == 503
    assert answer["Retry-After"]
    page = answer.content.decode()
    assert "A data source is unavailable" in page and "Connection refused" in page
    assert "Django administration" in page  # admin/base_site.html where the admin is installed


def test_without_the_admin_the_degraded_page_is_the_apps_own(settings):
    apps = [app for app in settings.INSTALLED_APPS if app != "django.contrib.admin"]
    with override_settings(INSTALLED_APPS=apps, ROOT_URLCONF="resilience.tests.urls_no_admin"):
        answer = Client().get("/refused/", headers={"Accept": BROWSER})
    assert answer.status_code == 503
    page = answer.content.decode()
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Service degraded</title>" in page and "Connection refused" in page
    assert "Django administration" not in page


@pytest.mark.parametrize(
    ("accept", "json"),
    [
        ("application/json", True),
        ("application/json, text/html;q=0.5", True),
        (BROWSER, False),
        ("*/*", False),  # a client that does not say: the page
        ("", False),
    ],
)
def test_json_or_html_follows_the_accept_header(accept, json):
    answer = Client().get("/refused/", headers={"Accept": accept} if accept else {})
    assert answer.status_code == 503
    assert answer["Content-Type"].startswith("application/json" if json else "text/html")
    if json:
        body = answer.json()
        assert body["status"] == "error" and body["data"] is None
        assert "Connection refused" in body["reason"]


def test_a_path_prefix_gets_json_only_when_a_setting_says_so(settings):
    assert (
        Client()
        .get("/api/refused/", headers={"Accept": BROWSER})["Content-Type"]
        .startswith("text/html")
    )  # no hard-coded /api/
    settings.RESILIENCE = {"JSON_PATHS": ["/api/"]}
    answer = Client().get("/api/refused/", headers={"Accept": BROWSER})
    assert answer["Content-Type"].startswith("application/json")
    assert answer.json()["status"] == "error"


def test_a_bug_in_a_view_stays_a_500():
    answer = Client(raise_request_exception=False).get("/broken/")
    assert answer.status_code == 500


def test_staff_see_each_breakers_state_in_a_header_others_do_not(settings):
    settings.RESILIENCE = {"BREAKERS": {"payments": {}}}
    get_breaker("payments").force_open()
    assert "X-Circuit-Breaker" not in Client().get("/admin/login/")
    member = get_user_model().objects.create_user("staff@example.com", "x", is_staff=True)
    client = Client()
    client.force_login(member)
    assert client.get("/admin/")["X-Circuit-Breaker"] == "payments=open"


def test_a_json_path_that_is_not_a_path_is_refused_by_a_check(settings):
    from resilience.checks import check_settings

    settings.RESILIENCE = {"JSON_PATHS": ["api/"]}
    (error,) = [m for m in check_settings() if "JSON_PATHS" in m.msg]
    assert error.id == "resilience.E019" and "starting with" in error.msg
