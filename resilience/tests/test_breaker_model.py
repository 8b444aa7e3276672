"""Hypothesis drives the breaker and a plain model side by side; they must agree.

The model holds every rule in a few lines each: consecutive failures, the
failure rate and the slow-call rate over the last WINDOW seconds (once
MINIMUM calls were made), probes per recovery window, SUCCESS successful
probes to close, any failed probe to reopen, backoff, and the operator's
forced states. It runs on both stores (STYLE.md item 4), and once with the
consecutive rule off so that the window rules act alone.

When the window rules are looked at is part of the contract: on every
failure and every slow call, and at each look at the store (every call on
the shared store here, whose sync interval is 0; every ``TICK`` in-process).
The model looks at the same moments. The fleet-wide version, with skew and
store faults, is test_fleet_model.py.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from resilience.breaker import CircuitBreaker, Probe, State
from resilience.breaker.machine import TICK
from resilience.clock import FakeClock
from resilience.errors import CircuitOpenError

from .conftest import store_of

THRESHOLD = 3
RECOVERY = 10.0
MAX_RECOVERY = 40.0
RATE = 50.0  # percent, failure rate and slow-call rate alike
SLOW = 1.0  # seconds: a call this long or longer is slow
WINDOW = 5  # seconds
MINIMUM = 4  # calls in the window before a rate means anything
MAX_CALLS = 2  # probes per recovery window
SUCCESS = 2  # successful probes that close it


class Model:
    """What the breaker should do, written as plainly as possible."""

    def __init__(self, threshold: int | None, look_every: float) -> None:
        self.threshold = threshold
        self.look_every = look_every
        self.next_look = -math.inf
        self.mode = "closed"  # closed | open | forced_open | disabled
        self.failures = 0
        self.calls: list[tuple[float, bool, bool]] = []  # (when, failed, slow), this decision
        self.opened_at = None
        self.open_until = None
        self.trips = 0
        self.taken: dict[int, int] = {}  # probes per recovery window of this open
        self.successes = 0  # successful probes of this open

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

    def in_window(self, now: float) -> list[tuple[float, bool, bool]]:
        return [c for c in self.calls if int(c[0]) > int(now) - WINDOW]

    def rates_say_open(self, now: float) -> bool:
        calls = self.in_window(now)
        if len(calls) < MINIMUM:
            return False
        failed = sum(1 for _, f, _ in calls if f)
        slow = sum(1 for _, _, s in calls if s)
        return 100.0 * failed / len(calls) >= RATE or 100.0 * slow / len(calls) >= RATE

    def look(self, now: float) -> None:
        """The breaker looks at the store (and so at the window) when a look is due."""
        if now < self.next_look:
            return
        self.next_look = now + self.look_every
        if self.mode == "closed" and self.rates_say_open(now):
            self.open(now, 1)

    def admit(self, now: float) -> str:
        """ "call", "probe" or "reject" (after the look that admission makes)."""
        self.look(now)
        state = self.public(now)
        if state == "closed":
            return "call"
        if state == "half_open" and self.taken.get(self.window(now), 0) < MAX_CALLS:
            self.taken[self.window(now)] = self.taken.get(self.window(now), 0) + 1
            return "probe"
        return "reject"

    def outcome(self, kind: str, outcome: str, slow: bool, now: float) -> None:
        if outcome == "ignored":
            if kind == "probe":
                self.taken[self.window(now)] -= 1  # given back
            return
        failed = outcome == "fail"
        if kind == "probe":
            if failed:
                self.open(now, self.trips + 1)
            else:
                self.successes += 1
                if self.successes >= SUCCESS:
                    self.close()
            return
        if self.mode != "closed":
            return  # forced closed counts nothing; a stale permit's outcome neither
        self.calls.append((now, failed, slow))
        if failed and self.threshold is not None:
            self.failures += 1
            if self.failures >= self.threshold:
                self.open(now, 1)
                return
        elif not failed and self.threshold is not None:
            self.failures = 0
        if (failed or slow) and self.rates_say_open(now):
            self.open(now, 1)

    def open(self, now: float, trips: int) -> None:
        self.mode = "open"
        self.opened_at = now  # measured from this open, never from an earlier one
        self.trips = trips
        self.open_until = self.opened_at + self.duration()
        self.failures = 0
        self.calls = []
        self.taken = {}
        self.successes = 0

    def close(self, mode: str = "closed") -> None:
        self.mode = mode
        self.failures = 0
        self.trips = 0
        self.calls = []
        self.taken = {}
        self.successes = 0


class BreakerMachine(RuleBasedStateMachine):
    store_kind = "local"
    threshold: int | None = THRESHOLD

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        store = store_of(self.store_kind, self.clock)
        self.breaker = CircuitBreaker(
            "model",
            failure_threshold=self.threshold,
            recovery_timeout=RECOVERY,
            backoff_multiplier=2,
            max_recovery_timeout=MAX_RECOVERY,
            failure_rate=RATE,
            slow_call_rate=RATE,
            slow_call_duration=SLOW,
            window=WINDOW,
            minimum_calls=MINIMUM,
            half_open_max_calls=MAX_CALLS,
            success_threshold=SUCCESS,
            clock=self.clock,
            store=store,
            ignore=KeyError,
        )
        interval = store.sync_interval
        self.model = Model(self.threshold, TICK if interval is None else min(interval, TICK))
        self.held: Probe | None = None
        self.opened: list[float] = []

    def _settle(self, permit, outcome: str, slow: bool) -> None:
        seconds = SLOW + 0.5 if slow else SLOW / 10
        if outcome == "ok":
            self.breaker.record_success(permit, seconds)
        elif outcome == "ignored":
            self.breaker.record_failure(KeyError("x"), permit, seconds)
        else:
            self.breaker.record_failure(ConnectionRefusedError("refused"), permit, seconds)

    def _call(self, outcome: str, slow: bool = False) -> None:
        now = self.clock.time()
        expected = self.model.admit(now)
        try:
            permit = self.breaker.acquire()
        except CircuitOpenError:
            assert expected == "reject", (expected, self.model.__dict__)
            return
        assert expected == ("probe" if isinstance(permit, Probe) else "call"), expected
        self._settle(permit, outcome, slow)
        self.model.outcome(expected, outcome, slow, now)

    @rule(
        outcome=st.sampled_from(["ok", "fail", "fail", "ignored"]),
        slow=st.sampled_from([False, False, True]),
    )
    def call(self, outcome: str, slow: bool) -> None:
        self._call(outcome, slow)

    @rule()
    def trip(self) -> None:
        """A burst of failures: reaches the open and half-open states in few steps."""
        for _ in range(THRESHOLD):
            self._call("fail")

    @rule(outcomes=st.lists(st.sampled_from(["ok", "ok", "fail", "slow"]), min_size=3, max_size=8))
    def burst(self, outcomes: list[str]) -> None:
        """Many calls in one second: the window rules' minimum is reached in few steps."""
        for outcome in outcomes:
            self._call("ok" if outcome == "slow" else outcome, slow=outcome == "slow")

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.0, 5.0, 9.5, 10.0, 10.0, 15.0, 40.0]))
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
            self.model.outcome("call", "ok", False, now)
            return
        assert expected == "probe"
        self.held = permit

    @precondition(lambda self: self.held is not None)
    @rule(ok=st.booleans())
    def settle_probe(self, ok: bool) -> None:
        permit, self.held = self.held, None
        model = self.model
        current = model.mode == "open" and permit.rec.uid == self.breaker.record.uid
        self._settle(permit, "ok" if ok else "fail", slow=False)
        if current:
            model.outcome("probe", "ok" if ok else "fail", False, self.clock.time())

    @rule(action=st.sampled_from(["force_open", "force_closed", "reset"]))
    def operator(self, action: str) -> None:
        getattr(self.breaker, action)()
        if action == "force_open":
            self.model.close("forced_open")
            self.model.opened_at = max(self.clock.time(), self.model.opened_at or 0.0)
        else:
            self.model.close("disabled" if action == "force_closed" else "closed")

    @invariant()
    def agrees_with_the_model(self) -> None:
        now = self.clock.time()
        self.model.look(now)  # the snapshot looks, as a call would
        snap = self.breaker.snapshot()
        model = self.model
        assert snap.state.value == model.public(now), (snap, model.__dict__)
        assert snap.forced == (model.mode in ("forced_open", "disabled"))
        if model.mode == "closed":
            assert snap.failure_count == model.failures
            window = model.in_window(now)
            assert snap.window_calls == len(window), (snap, window)
            assert snap.window_failures == sum(1 for _, failed, _ in window if failed)
            assert snap.window_slow == sum(1 for _, _, slow in window if slow)
        if model.mode == "open":
            assert snap.opened_at == model.opened_at
            assert snap.opened_at + model.duration() == pytest.approx(model.open_until)
            if snap.state is State.HALF_OPEN:
                assert snap.probes_taken == model.taken.get(model.window(now), 0)
                assert snap.probe_successes == model.successes

    @invariant()
    def opened_at_never_moves_backwards(self) -> None:
        opened = self.breaker.record.opened_at
        if opened is not None:
            assert not self.opened or opened >= self.opened[-1]
            self.opened.append(opened)

    @invariant()
    def state_value_is_public(self) -> None:
        assert self.breaker.record.state_at(self.clock.time()).value in {s.value for s in State}


class CacheStoreMachine(BreakerMachine):
    """The same model on the shared store, refreshed on every call (sync interval 0)."""

    store_kind = "cache"


class WindowRulesAloneMachine(BreakerMachine):
    """The consecutive rule off: only the failure and slow-call rates open it."""

    threshold = None


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
TestWindowRulesAloneAgainstModel = WindowRulesAloneMachine.TestCase
TestWindowRulesAloneAgainstModel.settings = MODEL_SETTINGS
