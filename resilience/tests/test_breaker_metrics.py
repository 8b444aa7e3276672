"""The breaker's Prometheus figures, under Resilience4j-micrometer's names where they mean the same.

``resilience_breaker_calls_total{kind}`` (successful, failed, ignored,
not_permitted), the window's ``resilience_breaker_failure_rate`` and
``resilience_breaker_slow_call_rate`` (-1 under the minimum of calls, as
Resilience4j says "not enough calls"), and the half-open progress. Read from
the collector and the process's registry, without a server.
"""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

from resilience import metrics
from resilience.registry import get_breaker

from .conftest import outcomes


def gauges(collector: metrics.StateCollector) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for family in collector.collect():
        assert isinstance(family, GaugeMetricFamily)
        for sample in family.samples:
            found.setdefault(sample.name, {})[sample.labels.get("breaker", "")] = sample.value
    return found


def calls(name: str, kind: str) -> float:
    return (
        REGISTRY.get_sample_value("resilience_breaker_calls_total", {"breaker": name, "kind": kind})
        or 0.0
    )


@pytest.fixture
def windowed(settings):
    settings.RESILIENCE = {
        "FAILURE_THRESHOLD": None,
        "FAILURE_RATE": 50,
        "SLOW_CALL_RATE": 50,
        "MINIMUM_CALLS": 4,
        "RECOVERY_TIMEOUT": 10,
        "HALF_OPEN_MAX_CALLS": 2,
        "SUCCESS_THRESHOLD": 2,
        "IGNORE": ["builtins.KeyError"],
    }
    metrics.install()
    return get_breaker("metered")


def test_calls_are_counted_by_resilience4j_s_kinds(windowed):
    breaker = windowed
    before = {kind: calls("metered", kind) for kind in ("successful", "failed", "ignored")}
    outcomes(breaker, ".x.")
    with pytest.raises(KeyError):
        breaker.call(lambda: {}["missing"])
    assert calls("metered", "successful") - before["successful"] == 2
    assert calls("metered", "failed") - before["failed"] == 1
    assert calls("metered", "ignored") - before["ignored"] == 1


def test_the_window_s_rates_are_minus_one_until_the_minimum_then_percent(windowed):
    breaker = windowed
    collector = metrics.StateCollector()
    outcomes(breaker, ".x")
    found = gauges(collector)
    assert found["resilience_breaker_failure_rate"]["metered"] == -1  # 2 calls < 4
    assert found["resilience_breaker_slow_call_rate"]["metered"] == -1
    outcomes(breaker, "..")
    found = gauges(collector)
    assert found["resilience_breaker_failure_rate"]["metered"] == 25.0
    assert found["resilience_breaker_slow_call_rate"]["metered"] == 0.0
    assert "metered" not in found.get("resilience_breaker_half_open_successes", {})


def test_not_permitted_and_half_open_progress(windowed, settings):
    breaker = windowed
    breaker.half_open()
    before = calls("metered", "not_permitted")
    first, second = breaker.acquire(), breaker.acquire()
    with pytest.raises(Exception, match="half-open and its probes are taken"):
        breaker.acquire()
    assert calls("metered", "not_permitted") - before == 1
    breaker.record_success(first)
    found = gauges(metrics.StateCollector())
    assert found["resilience_breaker_half_open_successes"]["metered"] == 1
    assert "metered" not in found.get("resilience_breaker_failure_rate", {})  # not closed
    breaker.record_success(second)
    assert breaker.public_state == "closed"
