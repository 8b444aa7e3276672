"""Malformed input on every endpoint (issue 10, item 13): a clear answer, never a 500.

A table of bad requests (odd section names, wrong methods, missing or bad
CSRF, bad Accept and format values, very long paths and query strings,
non-ASCII, a forged Host) is sent to every endpoint by an anonymous caller
and by a staff controller. Each must get a 4xx with a JSON or HTML body that
says something, or one of the documented answers (200, a redirect to the
login page, 503 from a failing health check); never a 500, never a traceback.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from .settings import TEST_ENV

pytestmark = [
    pytest.mark.usefixtures("questdb_server", "fresh_state"),
    pytest.mark.django_db(transaction=True, databases=["default", "questdb"]),
]

PASSWORD = TEST_ENV["QUESTDB_PASSWORD"]
ENDPOINTS = {
    "api": "/api/dashboard/positions/",
    "page": "/admin/questdash/dashboard/",
    "breakers": "/admin/resilience/circuitbreaker/",
    "action": "/admin/resilience/circuitbreaker/questdb/reset/",
    "health": "/ht/",
    "ready": "/ht/ready/",
    "live": "/ht/live/",
    "metrics": "/metrics",
    "login": "/admin/login/",
}
LONG = "x" * 1500  # a 1.5 KB path segment


def with_csrf(client: Client) -> dict[str, str]:
    """A valid CSRF token for this client (cookie set by a page with a form)."""
    for page in ("/admin/login/", "/admin/resilience/circuitbreaker/"):  # anonymous, staff
        if "csrftoken" not in client.cookies:
            client.get(page)
    return {"X-CSRFToken": client.cookies["csrftoken"].value}


CASES = {
    # wrong methods, without and with a valid CSRF token
    "post-no-csrf": lambda c, p: c.post(p),
    "post-bad-csrf": lambda c, p: c.post(
        p, {"csrfmiddlewaretoken": "x" * 64}, headers={"X-CSRFToken": "forged"}
    ),
    "post-with-csrf": lambda c, p: c.post(p, headers=with_csrf(c)),
    "put-with-csrf": lambda c, p: c.put(p, headers=with_csrf(c)),
    "delete-with-csrf": lambda c, p: c.delete(p, headers=with_csrf(c)),
    "patch-no-csrf": lambda c, p: c.patch(p),
    "options": lambda c, p: c.options(p),
    "brew": lambda c, p: c.generic("BREW", p, headers=with_csrf(c)),
    # bad Accept and format values
    "accept-garbage": lambda c, p: c.get(p, headers={"Accept": "garbage"}),
    "accept-bad-weight": lambda c, p: c.get(p, headers={"Accept": "text/html;q=2"}),
    "accept-unsupported": lambda c, p: c.get(p, headers={"Accept": "application/xml"}),
    "accept-non-ascii": lambda c, p: c.get(p, headers={"Accept": "tëxt/hţml"}),
    "format-unknown": lambda c, p: c.get(p, {"format": "xml"}),
    "format-empty": lambda c, p: c.get(p, {"format": ""}),
    "format-non-ascii": lambda c, p: c.get(p, {"format": "jsön"}),
    "format-twice": lambda c, p: c.get(f"{p}?format=json&format=xml"),
    # long, many, non-ASCII, broken
    "long-query": lambda c, p: c.get(p, {"q": LONG * 20}),
    "many-params": lambda c, p: c.get(p + "?" + "&".join(f"p{i}=1" for i in range(1500))),
    "long-path": lambda c, p: c.get(f"{p.rstrip('/')}/{LONG}/"),
    "non-ascii-path": lambda c, p: c.get(f"{p.rstrip('/')}/ünïcødé€/"),
    "non-ascii-query": lambda c, p: c.get(p, {"q": "日本語", "format": "json"}),
    "bad-utf8": lambda c, p: c.get(f"{p.rstrip('/')}/%FF%FE/?q=%FF%00"),
    "null-byte": lambda c, p: c.get(f"{p}?format=json%00"),
    "forged-host": lambda c, p: c.get(p, headers={"Host": "evil.example.com"}),
}
# Odd section names, for the API.
SECTIONS = [
    "nope", "Positions", "positions-", "-", "_", "positions;drop", "..", "%2e%2e", "%00",
    "ünïcødé", "<script>alert(1)</script>", LONG, "1" * 200, "positions%20",
]  # fmt: skip
DOCUMENTED = {200, 301, 302, 503}  # page or data; slash or login redirect; failing health check


@pytest.fixture
def callers(django_user_model, settings) -> dict[str, Client]:
    settings.DASHBOARD_FRESH_FOR = 300  # the page's reads are not what is tested here
    user = django_user_model.objects.create_user("controller", password="x", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_dashboard", "view_circuitbreaker", "control_circuitbreaker"]
        )
    )
    staff = Client(enforce_csrf_checks=True)
    staff.force_login(user)
    return {"anonymous": Client(enforce_csrf_checks=True), "staff": staff}


def assert_clear(response, what) -> None:
    body = response.content.decode(errors="replace")
    assert response.status_code != 500, (what, body[:500])
    assert response.status_code in DOCUMENTED or 400 <= response.status_code < 500, what
    assert "Traceback" not in body and 'File "' not in body, what
    assert PASSWORD not in body, what
    if response.status_code >= 400:
        kind = response.get("Content-Type", "")
        assert kind.startswith(("application/json", "text/html")), (what, kind)
        assert body.strip(), (what, "an empty refusal")
    if response.status_code == 405:
        assert response["Allow"], what


@pytest.mark.parametrize("case", list(CASES))
def test_every_endpoint_answers_bad_input_clearly(callers, case):
    for who, client in callers.items():
        for name, path in ENDPOINTS.items():
            assert_clear(CASES[case](client, path), (case, who, name))


@pytest.mark.parametrize("name", SECTIONS, ids=range(len(SECTIONS)))
def test_odd_section_names_are_a_json_404(callers, name):
    for who, client in callers.items():
        response = client.get(f"/api/dashboard/{name}/")
        assert_clear(response, (who, name))
        assert response.status_code in {401, 404}, (who, name)
        assert response["Content-Type"] == "application/json"
        if who == "staff":
            body = response.json()
            listed = body.get("sections") == ["active-sessions", "latest-prices", "positions",
                                              "price-history"]  # fmt: skip
            assert listed or body["error"].startswith("Not found"), body
            assert len(response.content) < 1000  # a long name is not echoed back whole


def test_wrong_methods_say_which_are_allowed(callers):
    staff = callers["staff"]
    token = with_csrf(staff)
    api = staff.post(ENDPOINTS["api"], headers=token)
    assert (api.status_code, api["Allow"]) == (405, "GET, HEAD")
    assert api.json()["error"] == "POST is not allowed: use GET."
    action = staff.get(ENDPOINTS["action"])
    assert (action.status_code, action["Allow"]) == (405, "POST")
    assert "GET is not allowed here; allowed methods: POST." in action.content.decode()
    health = staff.put(ENDPOINTS["health"], headers=token)
    assert health.status_code == 405 and "PUT is not allowed here" in health.content.decode()


def test_health_says_what_is_wrong_with_format_and_accept():
    unknown = Client().get("/ht/", {"format": "xml"})
    assert unknown.status_code == 400
    assert "json, text, atom, rss, openmetrics" in unknown.json()["error"]
    malformed = Client().get("/ht/ready/", headers={"Accept": "text/html, garbage"})
    assert malformed.status_code == 400
    assert malformed.json()["error"].startswith("Malformed Accept header")
    unsupported = Client().get("/ht/live/", headers={"Accept": "application/xml"})
    assert unsupported.status_code == 406
    assert "application/json" in unsupported.json()["error"]


def test_csrf_failures_on_the_api_answer_json(callers):
    response = callers["staff"].post(ENDPOINTS["api"])
    assert response.status_code == 403
    assert "X-CSRFToken" in response.json()["error"]
