"""/metrics (resilience.metrics.MetricsView): for staff and the token only, and the breaker
figures as Prometheus parses them."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from resilience import metrics
from resilience.registry import get_breaker

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-tests"  # resilience/tests/settings.py's METRICS_TOKEN


def samples(text: str, name: str) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_anonymous_is_401_a_member_403_with_a_hint():
    anonymous = Client().get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "METRICS_TOKEN" in anonymous.json()["error"]
    member = get_user_model().objects.create_user("member@example.com", "x")
    client = Client()
    client.force_login(member)
    assert client.get("/metrics").status_code == 403
    assert Client().get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_the_breakers_state_and_calls_as_prometheus_reads_them(settings):
    metrics.install()
    settings.RESILIENCE = {"BREAKERS": {"payments": {}}, "FAILURE_THRESHOLD": 2}
    breaker = get_breaker("payments")
    for _ in range(2):
        permit = breaker.acquire()
        breaker.record_failure(ConnectionRefusedError(111, "Connection refused"), permit)
    answer = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert answer["Cache-Control"] == "no-store"
    text = answer.content.decode()
    state = samples(text, "resilience_breaker_state")
    assert state[(("breaker", "payments"), ("state", "open"))] == 1.0
    assert state[(("breaker", "payments"), ("state", "closed"))] == 0.0
    calls = samples(text, "resilience_breaker_calls_total")
    assert calls[(("breaker", "payments"), ("kind", "failed"))] >= 2  # by kind
    transitions = samples(text, "resilience_breaker_transitions_total")
    opened = (("breaker", "payments"), ("from_state", "closed"), ("to_state", "open"))
    assert transitions[opened] >= 1
