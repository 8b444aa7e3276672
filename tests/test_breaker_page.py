"""The breaker page and `manage.py breaker`: the fleet's figures, one shared history, control.

Driven through Django's test client and call_command on the site's own
settings (the shared CacheStore on the database cache); one test runs the
command as a shell would, on a real Redis, for its exit status. The real
browser and the gunicorn fleet are in test_browser.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from resilience import fleet
from resilience.management.commands.breaker import SYSTEM_USERNAME
from resilience.registry import get_breaker

pytestmark = pytest.mark.django_db

BREAKERS = "/admin/resilience/circuitbreaker/"
ROOT = Path(__file__).resolve().parent.parent


def refuse() -> None:
    raise ConnectionRefusedError(111, "Connection refused")


@pytest.fixture(autouse=True)
def closed_breaker(settings):
    """A fresh shared store (the test database's cache), a closed questdb breaker, and this
    process reporting it as a web worker's registry would (without the thread)."""
    from django.core.cache import cache

    cache.clear()
    breaker = get_breaker("questdb")
    breaker.reset()
    fleet.reporter().forget()
    fleet.reporter().watch(breaker, interval=0)
    yield breaker
    get_breaker("questdb").reset()
    fleet.reporter().forget()


@pytest.fixture
def operator(django_user_model) -> Client:
    user = django_user_model.objects.create_user("alice", password="x", is_staff=True)
    for codename in ("view_circuitbreaker", "control_circuitbreaker"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def figure(html: str, name: str) -> str:
    found = re.search(rf'data-figure="{name}">([^<]*)<', html)
    assert found, f"no figure {name}"
    return found.group(1)


def publish(breaker) -> None:
    """What this process's reporter thread would do (the test run does not report itself)."""
    fleet.reporter().channel(breaker.store).publish(force=True)


def test_the_page_shows_the_fleet_the_outage_and_the_shared_history(operator):
    breaker = get_breaker("questdb")
    for _ in range(3):
        breaker.call(lambda: None)
    for _ in range(breaker.failure_threshold):
        with pytest.raises(ConnectionRefusedError):
            breaker.call(refuse)
    for _ in range(2):
        with pytest.raises(Exception, match="is open"):
            breaker.call(lambda: None)
    publish(breaker)
    page = operator.get(BREAKERS)
    assert page.status_code == 200
    html = page.content.decode()
    # Item 1: the fleet's figures, by outcome and window.
    assert (figure(html, "success-10"), figure(html, "failure-10")) == ("3", "5")
    assert figure(html, "rejected-60") == "2"
    assert figure(html, "error-rate-600") == "62.5 %"
    assert 'data-scope="fleet"' in html and "1 process sharing the store" in html
    assert '<svg class="cb-timeline"' in html and "band band-open" in html
    # Item 4: meaningful while open, not "Consecutive failures 0".
    assert 'data-figure="consecutive"' not in html
    assert "Open for" in html and "5 consecutive failures (threshold 5" in html
    assert "ConnectionRefusedError: [Errno 111] Connection refused" in html
    countdown = re.search(r'data-countdown="(\d+)"', html)
    assert countdown and 0 < int(countdown.group(1)) <= breaker.recovery_timeout
    # Items 2 and 3: the history with who made each decision; the processes.
    me = breaker.actor()
    assert me.startswith("pytest pid ")
    assert f"<td>closed</td><td>open</td><td>{me}</td>" in html
    assert re.search(r'<tr data-role="pytest" data-pid="\d+"', html)
    assert f"Answered by {me}." in html


def test_force_open_and_reset_name_the_operator_and_the_reason(operator):
    page = operator.get(BREAKERS)
    token = page.cookies["csrftoken"].value
    assert operator.post(f"{BREAKERS}questdb/force-open/", {"reason": "x"}).status_code == 403
    done = operator.post(
        f"{BREAKERS}questdb/force-open/",
        {"csrfmiddlewaretoken": token, "reason": "QuestDB upgrade\n until 14:00"},
    )
    assert done.status_code == 302
    breaker = get_breaker("questdb")
    assert (breaker.public_state, breaker.forced) == ("open", True)
    assert breaker.record.actor == "operator alice"
    assert breaker.record.reason == "forced open: QuestDB upgrade until 14:00"
    entry = LogEntry.objects.get(user__username="alice")
    assert entry.change_message == (
        "questdb: Forced open: every call fails fast (was closed, now open)."
        " Reason: QuestDB upgrade until 14:00"
    )
    html = operator.get(BREAKERS).content.decode()
    assert "forced by operator alice" in html
    assert "<td>operator alice</td><td>forced open: QuestDB upgrade until 14:00</td>" in html
    assert "Forced open: no probes until an operator resets it." in html
    operator.post(f"{BREAKERS}questdb/reset/", {"csrfmiddlewaretoken": token})
    assert get_breaker("questdb").public_state == "closed"
    assert LogEntry.objects.filter(user__username="alice").count() == 2


def test_without_a_shared_store_the_page_says_this_process_only(operator, settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "STORE": "resilience.stores.LocalStore"}
    breaker = get_breaker("questdb")  # a new registry: a new breaker on a LocalStore
    fleet.reporter().watch(breaker, interval=0)
    breaker.call(lambda: None)
    html = operator.get(BREAKERS).content.decode()
    assert 'data-scope="process"' in html
    assert "this process only: the breaker&#x27;s store is not shared" in html
    assert figure(html, "success-10") == "1"


# --- manage.py breaker ---------------------------------------------------------------------


def run(*args: str) -> tuple[int, str]:
    from io import StringIO

    out = StringIO()
    try:
        call_command("breaker", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_the_command_acts_as_the_admin_does_and_logs_a_system_action():
    code, out = run("open", "questdb", "--reason", "maintenance window")
    assert code == 0
    assert out.startswith("questdb: Forced open: every call fails fast (was closed, now open).")
    breaker = get_breaker("questdb")
    assert breaker.forced and re.fullmatch(r"manage\.py \S+@\S+", breaker.record.actor)
    assert breaker.record.reason.endswith(": maintenance window")
    entry = LogEntry.objects.get()
    assert entry.user.username == SYSTEM_USERNAME and not entry.user.is_active
    assert not entry.user.has_usable_password()
    assert "Reason: maintenance window (manage.py " in entry.change_message

    code, out = run("status", "--json")
    assert code == 1  # open: a script waiting on it keeps waiting
    (report,) = json.loads(out)["breakers"]
    assert (report["name"], report["state"], report["forced"]) == ("questdb", "open", True)
    assert report["actor"] == breaker.record.actor and report["open_for"] >= 0

    code, out = run("close", "--json")  # the only breaker: the name may be left out
    assert code == 0 and json.loads(out)["after"] == "closed"
    code, out = run("reset", "questdb")
    assert code == 0 and "Reset: closed, counts cleared (was closed, now closed)." in out
    code, out = run("status", "questdb")
    assert code == 0 and out.startswith("questdb: CLOSED; 0 of 5 failures")
    assert LogEntry.objects.count() == 3


def test_the_command_refuses_unknown_breakers():
    with pytest.raises(CommandError, match="No breaker 'nope': known are questdb"):
        call_command("breaker", "status", "nope")


def test_status_exit_code_from_a_shell_on_a_shared_redis(settings, redis_server, tmp_path):
    url = redis_server.fresh_database(8)
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    }
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "REDIS_URL": url,
           "QUESTDASH_VAR_DIR": str(tmp_path)}  # fmt: skip

    def status() -> subprocess.CompletedProcess:
        command = [sys.executable, "manage.py", "breaker", "status", "questdb"]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip

    breaker = get_breaker("questdb")
    for _ in range(breaker.failure_threshold):
        with pytest.raises(ConnectionRefusedError):
            breaker.call(refuse)
    shell = status()
    assert shell.returncode == 1, shell.stderr
    assert shell.stdout.startswith("questdb: OPEN for ")
    assert "Why: 5 consecutive failures (threshold 5" in shell.stdout
    breaker.reset()
    shell = status()
    assert (shell.returncode, shell.stdout.split(";")[0]) == (0, "questdb: CLOSED")
