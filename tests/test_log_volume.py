"""Log volume in an outage is bounded whatever the traffic (issue 11, item 2).

QuestDB is really stopped and the breaker really open; requests go through
the whole site (middleware, session, the API view, the fallback, the guard)
with Django's test client. Whatever the number of requests, the same few
WARNING-or-above lines are written: the first of each kind per section, and
after the interval one line that says how many followed. Each request still
has its own DEBUG line, and the metrics count every one.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from prometheus_client import REGISTRY

from questdash import localdb
from resilience import fallback, guard
from resilience.logs import reset_summaries
from resilience.registry import get_breaker

pytestmark = [pytest.mark.usefixtures("questdb_server"), pytest.mark.django_db(databases="__all__")]

SECTIONS = ["active-sessions", "latest-prices", "positions"]


@pytest.fixture
def outage(fresh_state, django_user_model) -> Iterator[Client]:
    """A staff client, every section with a last good copy, then QuestDB stopped and the
    breaker open."""
    user = django_user_model.objects.create_user("watcher", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    client = Client()
    client.force_login(user)
    for name in SECTIONS:
        assert client.get(f"/api/dashboard/{name}/").json()["status"] == "ok"
    localdb.stop()
    try:
        deadline = time.monotonic() + 30
        while client.get("/api/dashboard/positions/")["X-Circuit-Breaker"] != "questdb=open":
            assert time.monotonic() < deadline, "the breaker did not open"
        yield client
    finally:
        localdb.start()
        get_breaker("questdb").reset()


def served(name: str) -> float:
    query = name.replace("-", "_")
    labels = {"query": query, "status": "degraded"}
    return REGISTRY.get_sample_value("resilience_fallback_served_total", labels) or 0.0


def drive(client: Client, requests: int, caplog: pytest.LogCaptureFixture) -> list[tuple]:
    """``requests`` API requests, spread over the sections, each answered degraded; the
    WARNING-or-above lines they caused, as (logger, event type, query or operation).
    Summaries start afresh, as in a new process."""
    reset_summaries()
    caplog.clear()
    before = {name: served(name) for name in SECTIONS}
    for i in range(requests):
        response = client.get(f"/api/dashboard/{SECTIONS[i % len(SECTIONS)]}/")
        assert response.status_code == 200
        assert response.json()["status"] == "degraded"
        assert response.json()["reason"].startswith("circuit_open: ")
    counted = sum(served(name) - before[name] for name in SECTIONS)
    assert counted == requests, "the metrics count every degraded answer"
    detail = Counter(
        getattr(r, "event_type", None) for r in caplog.records if r.levelno == logging.DEBUG
    )
    # The first of each section at WARNING, every other request at DEBUG.
    assert detail["resilience.fallback.served"] == requests - len(SECTIONS)
    return sorted(
        (r.name, r.event_type, r.data.get("query") or r.data.get("operation"))
        for r in caplog.records
        if r.levelno >= logging.WARNING
    )


def test_warning_lines_in_an_outage_do_not_grow_with_traffic(outage, caplog):
    caplog.set_level(logging.DEBUG)
    few = drive(outage, 60, caplog)
    many = drive(outage, 600, caplog)
    assert few == many
    expected = []
    for name in SECTIONS:
        query = name.replace("-", "_")
        expected += [
            ("resilience.fallback", "resilience.fallback.served", query),
            ("resilience.guard", f"questdb.get_{query}_failed", f"get_{query}"),
        ]
    assert many == sorted(expected)


def test_after_the_interval_one_line_says_how_many_followed(outage, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    for summary in (fallback._summary, guard._summary):
        monkeypatch.setattr(summary, "interval", 0.5)
    drive(outage, 30, caplog)  # 10 a section: one line each, then nine at DEBUG
    time.sleep(0.6)
    caplog.clear()
    assert outage.get("/api/dashboard/positions/").json()["status"] == "degraded"
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    summaries = [r for r in lines if r.name == "resilience.fallback"]
    assert len(summaries) == 1
    data = summaries[0].data
    assert (data["query"], data["repeated"], data["kind"]) == ("positions", 9, "circuit_open")
    assert data["window"] >= 0.5
