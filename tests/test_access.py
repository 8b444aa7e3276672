"""Who may do what, on every URL, and what each caller learns (issue 10, items 1 to 3).

Five roles against the API, the dashboard page and its live/, the breaker page and its
actions, /ht/, /ht/ready/, /ht/live/ and /metrics, on the real QuestDB.
Anonymous callers get status codes and check names; detail (hosts, ports,
errors, the Celery command, the breaker header) is for staff or a token.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from questdash.sections import LOADERS, section
from questdash.tasks import HEARTBEAT
from resilience.health import record_heartbeat
from resilience.registry import get_breaker

from .settings import TEST_ENV

pytestmark = [
    pytest.mark.usefixtures("questdb_server", "fresh_state"),
    pytest.mark.django_db(transaction=True, databases=["default", "questdb"]),
]

PASSWORD = TEST_ENV["QUESTDB_PASSWORD"]
HEALTH_TOKEN = "health-token-for-access-tests-0123"
METRICS_TOKEN = "metrics-token-for-access-tests-0123"
VIEWER = ["view_dashboard", "view_circuitbreaker"]
ROLES: dict[str, dict | None] = {
    "anonymous": None,
    "non_staff": {"staff": False, "perms": VIEWER},  # permissions without staff: still no
    "staff_no_perms": {"staff": True, "perms": []},
    "viewer": {"staff": True, "perms": VIEWER},
    "controller": {"staff": True, "perms": [*VIEWER, "control_circuitbreaker"]},
}
STAFF = {"staff_no_perms", "viewer", "controller"}
ACTION = "/admin/resilience/circuitbreaker/questdb/force-open/"

# (method, path): status for anonymous, non_staff, staff_no_perms, viewer, controller
MATRIX = {
    ("get", "/api/dashboard/positions/"): (401, 403, 403, 200, 200),
    ("get", "/admin/questdash/dashboard/"): (302, 302, 403, 200, 200),
    ("get", "/admin/questdash/dashboard/live/"): (401, 403, 403, 200, 200),  # the page's script
    ("post", "/admin/questdash/dashboard/live/"): (405, 405, 405, 405, 405),
    ("get", "/admin/resilience/circuitbreaker/"): (302, 302, 403, 200, 200),
    ("post", ACTION): (302, 302, 403, 403, 302),
    ("get", "/ht/"): (200, 200, 200, 200, 200),
    ("get", "/ht/ready/"): (200, 200, 200, 200, 200),
    ("get", "/ht/live/"): (200, 200, 200, 200, 200),
    ("get", "/metrics"): (401, 403, 200, 200, 200),
    ("get", "/admin/login/"): (200, 200, 302, 302, 302),  # staff are sent on to the index
}


def make_client(django_user_model, role: str) -> Client:
    client = Client()
    spec = ROLES[role]
    if spec is not None:
        user = django_user_model.objects.create_user(role, password="x", is_staff=spec["staff"])
        user.user_permissions.add(*Permission.objects.filter(codename__in=spec["perms"]))
        client.force_login(user)
    return client


@pytest.fixture
def clients(django_user_model) -> dict[str, Client]:
    return {role: make_client(django_user_model, role) for role in ROLES}


@pytest.fixture
def tokens(settings):
    settings.HEALTH_TOKEN = HEALTH_TOKEN
    settings.METRICS_TOKEN = METRICS_TOKEN


def warm() -> None:
    """What the beat does: every section fresh, and its heartbeat (so /ht/ is 200)."""
    for slug in LOADERS:
        assert section(slug).refresh().status == "ok", slug
    record_heartbeat(HEARTBEAT)


@pytest.mark.parametrize("role", list(ROLES))
def test_access_matrix(clients, role):
    """Item 1 (the API follows the page's permission) and the whole matrix of the issue."""
    warm()
    client = clients[role]
    index = list(ROLES).index(role)
    breaker = get_breaker("questdb")
    for (method, path), statuses in MATRIX.items():
        response = getattr(client, method)(path)
        assert response.status_code == statuses[index], (role, method, path)
        if response.status_code != 302:
            assert response.content, (role, path)  # every answer says something
        assert PASSWORD not in response.content.decode()
        if response.status_code == 302 and path != "/admin/login/" and role not in STAFF:
            assert response["Location"].startswith("/admin/login/"), (role, path)
        # The breaker header is for staff only: nobody else learns the site's dependencies.
        assert ("X-Circuit-Breaker" in response) == (role in STAFF), (role, path)
        if path == ACTION:
            assert breaker.public_state == ("open" if role == "controller" else "closed")
            breaker.reset()


def test_api_needs_the_dashboard_permission_as_the_page_does(clients):
    """Item 1: staff without view_dashboard get 403 from both, with a reason in JSON."""
    bare = clients["staff_no_perms"]
    response = bare.get("/api/dashboard/positions/")
    assert response.status_code == 403
    assert "questdash.view_dashboard" in response.json()["error"]
    assert bare.get("/admin/questdash/dashboard/").status_code == 403


# --- item 2: what anonymous callers of /ht/ and /metrics learn ---------------------------

FORMATS = [
    {"format": "json"},
    {"format": "text"},
    {"format": "rss"},
    {"format": "atom"},
    {"format": "openmetrics"},
    {},  # HTML
]


@pytest.fixture
def failing_health(questdb_via_proxy):
    """QuestDB refusing through the proxy and no beat: detail would name the proxy's
    port, the driver's error and the Celery command."""
    questdb_via_proxy.set_enabled(False)
    return [f"port {questdb_via_proxy.port}", "celery -A questdash", "refused"]


@pytest.mark.parametrize("params", FORMATS, ids=lambda p: p.get("format", "html"))
def test_anonymous_health_gives_names_and_status_only(clients, tokens, failing_health, params):
    for role in ("anonymous", "non_staff"):
        response = clients[role].get("/ht/", params)
        body = response.content.decode()
        assert response.status_code in {200, 503}  # the feeds answer 200 whatever the checks say
        assert "QuestDB" in body and "Heartbeat" in body, (role, body)
        for secret in failing_health:
            assert secret not in body, (role, secret, body)
    if params.get("format") != "openmetrics":  # that format has no messages for anyone
        detail = clients["viewer"].get("/ht/", params).content.decode()
        for secret in failing_health[:2]:
            assert secret in detail, (secret, detail)


def test_health_detail_for_staff_and_token_holders_only(clients, tokens, failing_health):
    anonymous = clients["anonymous"].get("/ht/", {"format": "json"})
    assert anonymous.status_code == 503
    assert anonymous.json()["QuestDB(alias='questdb')"] == "Unavailable"
    assert anonymous.json()["Heartbeat(name='celery-beat')"] == "Unavailable"
    assert anonymous.json()["Database(alias='default')"] == "OK"

    for headers in ({"Authorization": f"Bearer {HEALTH_TOKEN}"}, None):
        client = Client() if headers else clients["staff_no_perms"]
        detail = client.get("/ht/", {"format": "json"}, headers=headers).json()
        assert detail["QuestDB(alias='questdb')"].startswith("Unavailable: SELECT 1 failed:")
        assert "celery -A questdash worker -B" in detail["Heartbeat(name='celery-beat')"]

    for wrong in (
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": f"Basic {HEALTH_TOKEN}"},
        {"Authorization": f"Bearer {METRICS_TOKEN}"},  # each token opens its own door
    ):
        body = Client().get("/ht/", {"format": "json"}, headers=wrong).json()
        assert body["QuestDB(alias='questdb')"] == "Unavailable", wrong
    in_query = Client().get("/ht/", {"format": "json", "token": HEALTH_TOKEN}).json()
    assert in_query["QuestDB(alias='questdb')"] == "Unavailable"  # never from the query string


def test_health_names_never_carry_the_redis_host(settings, redis_server, clients):
    warm()
    settings.REDIS_URL = redis_server.url
    body = clients["anonymous"].get("/ht/", {"format": "json"}).json()
    assert body["Redis"] == "OK"
    assert not [key for key in body if str(redis_server.port) in key]
    staff = clients["viewer"].get("/ht/", {"format": "json"}).json()
    assert f"Redis(db=0, host='127.0.0.1', port={redis_server.port})" in staff


def test_metrics_for_staff_and_the_metrics_token_only(clients, tokens):
    for headers, status in (
        (None, 401),
        ({"Authorization": "Bearer wrong-token-wrong-token"}, 401),
        ({"Authorization": f"Bearer {HEALTH_TOKEN}"}, 401),
        ({"Authorization": f"Bearer {METRICS_TOKEN}"}, 200),
    ):
        response = Client().get("/metrics", headers=headers)
        assert response.status_code == status, headers
        if status == 401:
            assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
            assert "METRICS_TOKEN" in response.json()["error"]
            assert b"resilience_" not in response.content
    assert b"resilience_breaker_state" in clients["staff_no_perms"].get("/metrics").content
    assert clients["non_staff"].get("/metrics").status_code == 403


def test_no_token_configured_means_no_token_works(clients, settings):
    settings.HEALTH_TOKEN = settings.METRICS_TOKEN = ""
    assert Client().get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
    assert Client().get("/metrics", headers={"Authorization": "Bearer x"}).status_code == 401


# --- item 3: readiness does not follow QuestDB or the beat ---------------------------------


def test_ready_stays_200_while_questdb_and_the_beat_are_down(failing_health):
    assert Client().get("/ht/").status_code == 503
    for path in ("/ht/ready/", "/ht/live/"):
        response = Client().get(path, {"format": "json"})
        assert response.status_code == 200, path
        assert response.json() == {
            "Database(alias='default')": "OK",
            "CacheRoundTrip(alias='default')": "OK",
        }


def test_ready_fails_when_this_process_cannot_serve(settings):
    from testkit.ports import free_port

    dead = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        "OPTIONS": {"socket_connect_timeout": 0.3},
    }
    settings.CACHES = {**settings.CACHES, "default": dead}
    response = Client().get("/ht/ready/", {"format": "json"})
    assert response.status_code == 503
    assert response.json()["CacheRoundTrip(alias='default')"] == "Unavailable"
