"""Figures on the breaker page come from every process that serves, whatever server runs it,
and count every call since the breaker's first use (issue 19: outside gunicorn, runserver
and Celery, the page showed "Failed 0" right after the five failures that opened it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from resilience import CircuitOpenError, OperationFailed, fleet, guarded
from resilience.registry import get_breaker
from testkit.ports import free_port

from .conftest import as_a_new_process

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db

SERVE = """
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.core.wsgi import get_wsgi_application


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server("127.0.0.1", int(sys.argv[1]), get_wsgi_application(), handler_class=Quiet)
server.serve_forever()
"""

SETTINGS = """
from resilience.tests.settings import *  # noqa: F403

CACHES = {{"default": {{"BACKEND": "django.core.cache.backends.redis.RedisCache",
                        "LOCATION": {url!r}}}}}
RESILIENCE = {{"STORE": "resilience.stores.CacheStore", "FLEET_REPORT_INTERVAL": 0.2}}
"""


def refused_calls(breaker: str, count: int) -> list[str]:
    port = free_port()  # nothing listens there
    outcomes = []
    for _ in range(count):
        try:
            guarded("connect", lambda: _connect(port), breaker_name=breaker, retry=False)
        except CircuitOpenError:
            outcomes.append("rejected")
        except OperationFailed:
            outcomes.append("failed")
    return outcomes


def _connect(port: int) -> None:
    import socket

    socket.create_connection(("127.0.0.1", port), 1).close()


def test_a_process_that_does_not_report_still_shows_its_own_failures(settings):
    settings.RESILIENCE = {"BREAKERS": {"payments": {}}}  # LocalStore; pytest is no server
    assert refused_calls("payments", 6) == ["failed"] * 5 + ["rejected"]
    view = fleet.fleet_view(get_breaker("payments"))
    minute = view.window(60)
    assert (minute.failure, minute.rejected) == (5, 1)


def test_a_process_served_by_any_wsgi_server_reports_to_the_fleet(shared_store, tmp_path, settings):
    (tmp_path / "serve.py").write_text(SERVE)
    (tmp_path / "served_settings.py").write_text(textwrap.dedent(SETTINGS.format(url=shared_store)))
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "served_settings",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}  # fmt: skip
    server = subprocess.Popen([sys.executable, "serve.py", str(port)], cwd=tmp_path, env=env,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        refused = free_port()
        outcomes = [_get(port, f"/guarded-refused/?port={refused}") for _ in range(6)]
        assert outcomes == ["failed"] * 5 + ["rejected"], outcomes
        settings.RESILIENCE = {**settings.RESILIENCE, "FLEET_REPORT_INTERVAL": 0.2}
        as_a_new_process()
        breaker = get_breaker("payments")
        deadline = time.monotonic() + 10
        while (seen := fleet.fleet_view(breaker)).window(60).failure < 5:
            assert time.monotonic() < deadline, f"the server never reported: {seen}"
            time.sleep(0.2)
        (process,) = [p for p in seen.processes if p.pid == server.pid]
        assert process.role == "serve.py"  # not a server the program's name gives away
        assert (seen.window(60).failure, seen.window(60).rejected) == (5, 1)
    finally:
        server.terminate()
        server.wait(10)


def _get(port: int, path: str) -> str:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
                return json.loads(answer.read())["outcome"]
        except urllib.error.HTTPError as error:
            return json.loads(error.read())["outcome"]
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
