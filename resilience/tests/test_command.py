"""`manage.py breaker`: what an operator is told is what happened, on a real Redis.

The suite's user model has no ``username`` (resilience/tests/users): the
admin log's system user is found by ``USERNAME_FIELD``. Redis is paused
with SIGSTOP to make an action that cannot land.
"""

from __future__ import annotations

import io
import json
import time

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import override_settings

from resilience.registry import get_breaker
from resilience.state import State
from testkit.redis_worker import start_workers

from .conftest import SOCKET_TIMEOUT, as_a_new_process

pytestmark = pytest.mark.django_db


def breaker_command(*args: str) -> tuple[int, str, str]:
    """``manage.py breaker ARGS``: its exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("breaker", *args, stdout=out, stderr=err)
        status = 0
    except SystemExit as exc:
        status = int(exc.code or 0)
    return status, out.getvalue(), err.getvalue()


def test_with_the_in_process_store_an_action_is_refused_and_says_why(settings):
    settings.RESILIENCE = {"BREAKERS": {"payments": {}}}  # LocalStore, the default
    with pytest.raises(CommandError) as refused:
        call_command("breaker", "open", "payments", stdout=io.StringIO())
    message = str(refused.value)
    assert "Not done" in message and "LocalStore" in message
    assert "CacheStore" in message  # and what to do instead
    assert get_breaker("payments").state is State.CLOSED
    assert not LogEntry.objects.exists()


def test_an_action_that_landed_is_said_and_logged_under_a_custom_user_model(shared_store):
    status, out, _ = breaker_command("open", "payments", "--reason", "provider maintenance")
    assert status == 0, out
    assert out.startswith("payments: Forced open: every call fails fast (was closed, now open).")
    as_a_new_process()  # another process reads the store: the decision is there
    assert get_breaker("payments").state is State.OPEN
    entry = LogEntry.objects.get()
    assert "payments: Forced open" in entry.change_message
    assert "provider maintenance" in entry.change_message
    system = get_user_model().objects.get(pk=entry.user_id)
    assert system.email == "manage.py" and not system.is_active and not system.has_usable_password()
    assert breaker_command("status", "payments")[0] == 1  # open: not healed


def test_an_action_while_redis_is_paused_says_it_did_not_land_and_changes_nothing(
    shared_store, redis_server
):
    get_breaker("payments")  # the store is read once while Redis answers
    with redis_server.paused():
        started = time.monotonic()
        status, out, err = breaker_command("open", "payments", "--reason", "QuestDB upgrade")
        took = time.monotonic() - started
    assert status == 2, (out, err)
    assert out == ""  # nothing claims it was done
    assert "Not done" in err and "did not reach the shared store" in err, err
    assert "cache 'default' did not answer" in err
    assert took < 10 * SOCKET_TIMEOUT + 2, took  # a few socket timeouts, not a hang
    assert not LogEntry.objects.exists()  # the admin log holds what happened only
    # Nothing is published later behind the operator's back: this process withdrew it...
    time.sleep(0.3)  # past the outage retry interval: the store answers again
    assert get_breaker("payments").state is State.CLOSED
    # ...and every process sees what it had.
    as_a_new_process()
    assert get_breaker("payments").state is State.CLOSED


def test_json_says_whether_the_action_landed(shared_store, redis_server):
    status, out, _ = breaker_command("reset", "payments", "--json")
    assert status == 0
    done = json.loads(out)
    assert done["landed"] is True and done["admin_log"] is True and done["after"] == "closed"
    with redis_server.paused():
        status, out, _ = breaker_command("open", "payments", "--json")
    assert status == 2
    answer = json.loads(out)
    assert answer["landed"] is False and answer["admin_log"] is False
    assert answer["message"].startswith("Not done")


def test_without_the_admin_the_command_acts_and_logs_nothing(shared_store):
    apps = [app for app in _installed() if app != "django.contrib.admin"]
    with override_settings(INSTALLED_APPS=apps):
        status, out, _ = breaker_command("open", "payments", "--json")
    assert status == 0
    assert json.loads(out)["admin_log"] is False
    as_a_new_process()
    assert get_breaker("payments").state is State.OPEN


def _installed() -> list[str]:
    from django.conf import settings

    return list(settings.INSTALLED_APPS)


def test_a_breaker_used_only_by_another_process_is_listed_and_can_be_acted_on(
    shared_store, tmp_path, settings
):
    settings.RESILIENCE = {**settings.RESILIENCE, "BREAKERS": {}}  # named nowhere here
    (worker,) = start_workers(shared_store, tmp_path, 1, env={"WORKER_ROLE": "celery"})
    try:
        worker.ask("make", name="search", threshold=3, recovery=60)
        worker.ask("report", name="search", interval=0.2)
        worker.ask("burst", name="search", ok=2, failed=3)
        deadline = time.monotonic() + 10
        while True:
            as_a_new_process()
            status, out, _ = breaker_command("status")
            if "search" in out or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert out.startswith("search: OPEN"), out
        assert status == 1
        status, out, _ = breaker_command("reset", "search")
        assert status == 0 and "Reset" in out
        deadline = time.monotonic() + 5  # the worker looks at the store every 0.5 s
        while worker.ask("snapshot", name="search")["state"] != "closed":
            assert time.monotonic() < deadline, "the worker never saw the reset"
            time.sleep(0.1)
    finally:
        worker.close()


def test_unknown_breakers_are_refused_with_the_known_ones(shared_store):
    with pytest.raises(CommandError, match=r"No breaker 'nope': known are payments"):
        call_command("breaker", "open", "nope", stdout=io.StringIO())


BARE_SETTINGS = """
SECRET_KEY = "bare"
INSTALLED_APPS = ["resilience"]  # no admin, no auth, no contenttypes
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}}
CACHES = {{"default": {{"BACKEND": "django.core.cache.backends.redis.RedisCache",
                        "LOCATION": {url!r}}}}}
RESILIENCE = {{"STORE": "resilience.stores.CacheStore", "BREAKERS": {{"payments": {{}}}}}}
USE_TZ = True
"""


def test_a_project_with_the_app_alone_checks_clean_and_runs_the_command(shared_store, tmp_path):
    """Only "resilience" installed: ``manage.py check`` is clean and the command acts."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "bare_settings.py").write_text(BARE_SETTINGS.format(url=shared_store))
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bare_settings",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}  # fmt: skip

    def django_admin(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "django", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    checked = django_admin("check")
    assert checked.returncode == 0 and "no issues" in checked.stdout, checked.stderr[-800:]
    opened = django_admin("breaker", "open", "payments", "--json")
    assert opened.returncode == 0, opened.stderr[-800:]
    assert json.loads(opened.stdout) | {"landed": True, "admin_log": False} == json.loads(
        opened.stdout
    )
    as_a_new_process()
    assert get_breaker("payments").state is State.OPEN
