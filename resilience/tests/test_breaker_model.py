"""Hypothesis drives the breaker and a ten-line model side by side; they must agree."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from resilience.breaker import CircuitBreaker, Probe, State
from resilience.clock import FakeClock
from resilience.errors import CircuitOpenError

from .conftest import store_of

THRESHOLD = 3
RECOVERY = 10.0
MAX_RECOVERY = 40.0


class Model:
    """What the breaker should do, written as plainly as possible."""

    def __init__(self) -> None:
        self.mode = "closed"  # closed | open | forced_open | disabled
        self.failures = 0
        self.opened_at = None
        self.open_until = None
        self.trips = 0
        self.taken: set[int] = set()  # probe windows taken in this open epoch

    def duration(self) -> float:
        return min(RECOVERY * 2 ** (self.trips - 1), MAX_RECOVERY)

    def window(self, now: float) -> int:
        return math.floor((now - self.open_until) / self.duration())

    def public(self, now: float) -> str:
        if self.mode in ("closed", "disabled"):
            return "closed"
        if self.mode == "forced_open" or now < self.open_until:
            return "open"
        return "half_open"

    def admit(self, now: float) -> str:
        """ "call", "probe" or "reject"."""
        state = self.public(now)
        if state == "closed":
            return "call"
        if state == "half_open" and self.window(now) not in self.taken:
            return "probe"
        return "reject"

    def open(self, now: float, trips: int) -> None:
        self.mode = "open"
        self.opened_at = now  # measured from this open, never from an earlier one
        self.trips = trips
        self.open_until = self.opened_at + self.duration()
        self.failures = 0
        self.taken = set()

    def close(self, mode: str = "closed") -> None:
        self.mode = mode
        self.failures = 0
        self.trips = 0
        self.taken = set()


class BreakerMachine(RuleBasedStateMachine):
    store_kind = "local"

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.breaker = CircuitBreaker(
            "model",
            failure_threshold=THRESHOLD,
            recovery_timeout=RECOVERY,
            backoff_multiplier=2,
            max_recovery_timeout=MAX_RECOVERY,
            clock=self.clock,
            store=store_of(self.store_kind, self.clock),
            ignore=KeyError,
        )
        self.model = Model()
        self.held: Probe | None = None
        self.opened: list[float] = []

    def _call(self, outcome: str) -> None:
        now = self.clock.time()
        expected = self.model.admit(now)
        try:
            permit = self.breaker.acquire()
        except CircuitOpenError:
            assert expected == "reject", (expected, self.model.__dict__)
            return
        assert expected == ("probe" if isinstance(permit, Probe) else "call"), expected
        if outcome == "ok":
            self.breaker.record_success(permit)
        elif outcome == "ignored":
            self.breaker.record_failure(KeyError("x"), permit)
        else:
            self.breaker.record_failure(ConnectionRefusedError("refused"), permit)
        self._expect(expected, outcome, now)

    def _expect(self, kind: str, outcome: str, now: float) -> None:
        model = self.model
        if outcome == "ignored":
            return
        if kind == "probe":
            if outcome == "ok":
                model.close()
            else:
                model.open(now, model.trips + 1)
        elif model.mode == "closed":
            if outcome == "ok":
                model.failures = 0
            else:
                model.failures += 1
                if model.failures >= THRESHOLD:
                    model.open(now, 1)

    @rule(outcome=st.sampled_from(["ok", "fail", "fail", "ignored"]))
    def call(self, outcome: str) -> None:
        self._call(outcome)

    @rule()
    def trip(self) -> None:
        """A burst of failures: reaches the open and half-open states in few steps."""
        for _ in range(THRESHOLD):
            self._call("fail")

    @rule(seconds=st.sampled_from([0.5, 1.0, 5.0, 9.5, 10.0, 10.0, 15.0, 40.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.held is None)
    @rule()
    def hold_probe(self) -> None:
        now = self.clock.time()
        expected = self.model.admit(now)
        try:
            permit = self.breaker.acquire()
        except CircuitOpenError:
            assert expected == "reject"
            return
        if not isinstance(permit, Probe):
            assert expected == "call"
            self.breaker.record_success(permit)
            self._expect("call", "ok", now)
            return
        assert expected == "probe"
        self.model.taken.add(self.model.window(now))
        self.held = permit

    @precondition(lambda self: self.held is not None)
    @rule(ok=st.booleans())
    def settle_probe(self, ok: bool) -> None:
        permit, self.held = self.held, None
        current = self.model.mode == "open" and permit.rec.epoch == self.breaker.snapshot().epoch
        if ok:
            self.breaker.record_success(permit)
        else:
            self.breaker.record_failure(ConnectionRefusedError("refused"), permit)
        if current:
            self._expect("probe", "ok" if ok else "fail", self.clock.time())

    @rule(action=st.sampled_from(["force_open", "force_closed", "reset"]))
    def operator(self, action: str) -> None:
        getattr(self.breaker, action)()
        if action == "force_open":
            self.model.mode = "forced_open"
            self.model.opened_at = max(self.clock.time(), self.model.opened_at or 0.0)
            self.model.failures = 0
            self.model.taken = set()
        else:
            self.model.close("disabled" if action == "force_closed" else "closed")

    @invariant()
    def agrees_with_the_model(self) -> None:
        snap = self.breaker.snapshot()
        now = self.clock.time()
        assert snap.state.value == self.model.public(now), (snap, self.model.__dict__)
        assert snap.forced == (self.model.mode in ("forced_open", "disabled"))
        if self.model.mode == "closed":
            assert snap.failure_count == self.model.failures
        if self.model.mode == "open":
            assert snap.opened_at == self.model.opened_at
            assert snap.opened_at + self.model.duration() == pytest.approx(self.model.open_until)

    @invariant()
    def opened_at_never_moves_backwards(self) -> None:
        opened = self.breaker.snapshot().opened_at
        if opened is not None:
            assert not self.opened or opened >= self.opened[-1]
            self.opened.append(opened)

    @invariant()
    def state_value_is_public(self) -> None:
        assert self.breaker.public_state in {s.value for s in State}


class CacheStoreMachine(BreakerMachine):
    """The same model on the shared store, refreshed on every call (sync interval 0)."""

    store_kind = "cache"


MODEL_SETTINGS = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBreakerAgainstModel = BreakerMachine.TestCase
TestBreakerAgainstModel.settings = MODEL_SETTINGS
TestBreakerOnCacheStoreAgainstModel = CacheStoreMachine.TestCase
TestBreakerOnCacheStoreAgainstModel.settings = MODEL_SETTINGS
