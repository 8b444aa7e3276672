"""Observers (signal receivers, metrics) that fail never fail or reclassify what they observe."""

from __future__ import annotations

import pytest

from resilience import metrics, metricsdir, signals
from resilience.breaker import Outcome, State
from resilience.guard import Guard

from .conftest import connection_refused, fail


def vanished(**kwargs) -> None:
    """What a Prometheus receiver raises when PROMETHEUS_MULTIPROC_DIR is gone."""
    raise FileNotFoundError(2, "No such file or directory: '/run/prometheus/counter_7.db'")


@pytest.fixture
def broken_receivers(monkeypatch):
    monkeypatch.setattr(signals, "_reported", {})  # each test starts unreported
    for signal in (signals.call_succeeded, signals.call_failed, signals.state_changed):
        signal.connect(vanished, dispatch_uid=f"test-vanished-{id(signal)}")
    yield
    for signal in (signals.call_succeeded, signals.call_failed, signals.state_changed):
        signal.disconnect(dispatch_uid=f"test-vanished-{id(signal)}")


def test_a_failing_receiver_leaves_successes_successes(make_breaker, broken_receivers, events):
    breaker = make_breaker()
    assert breaker.call(lambda: "rows") == "rows"
    assert Guard("get_positions", breaker=breaker).call(lambda: "rows") == "rows"
    snapshot = breaker.snapshot()
    assert (snapshot.state, snapshot.failure_count) == (State.CLOSED, 0)
    assert snapshot.counters["successes"] == 2 and snapshot.counters["failures"] == 0
    reported = events.of("resilience.observer_failed")
    assert len(reported) == 1  # once a minute per receiver, not once per call
    assert reported[0]["error_type"] == "FileNotFoundError"


def test_a_failing_receiver_leaves_failures_failures(make_breaker, broken_receivers):
    breaker = make_breaker(failure_threshold=2)
    permit = breaker.acquire()
    assert breaker.record_failure(connection_refused(), permit) is Outcome.FAILURE
    with pytest.raises(ConnectionRefusedError):  # the call's own error, not the receiver's
        breaker.call(fail())
    assert breaker.state is State.OPEN


def test_a_metric_that_cannot_be_written_never_fails_the_query(monkeypatch, events):
    class Unwritable:
        def labels(self, *args):
            raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(metrics, "QUERY_LATENCY", Unwritable())
    monkeypatch.setattr(metricsdir, "_dropped", {})  # this process's metrics, for this test
    timed = metrics._timer("questdb")
    result = timed(lambda sql, params, many, context: [(1,)], "SELECT 1", (), False, {})
    assert result == [(1,)]
    with pytest.raises(ZeroDivisionError):  # the query's own error still comes through
        timed(lambda *args: 1 / 0, "SELECT 1/0", (), False, {})
    # The metrics file could not be written: this process drops its metrics, says so once.
    assert len(events.of("resilience.metrics.dropped")) == 1
