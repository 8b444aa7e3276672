"""How often a fleet-shared breaker opens on too little evidence, and what its rules cost the store.

    .venv/bin/python benchmarks/fleet_rates.py [--trials 20] [--seconds 3] [--rates 10,40,100,1000]

Four simulated processes share one breaker through one cache (the model
test's harness, ``testkit/simulated.py``: a fake clock, every store
operation instant and counted). Calls arrive at a steady rate spread over the
four at random, each failing with probability 0.3, independently: a healthy
dependency with a bad day, which a threshold of 5 consecutive failures should
ride out. For each rate the table shows, over ``--trials`` trials of
``--seconds`` each, how many trials opened the breaker and the fleet-wide run
of consecutive failures (in true order, across all processes) it opened on.
"Consecutive" means what it says when no trial opens on a run shorter than
the threshold.

``--healthy-first SECONDS`` starts each trial with that long a spell with no
failures at all (every process then stops telling each success, and learns of
the first failures at its next look: the onset the README describes).

``--success-interval SECONDS`` is the store's ``SUCCESS_INTERVAL`` (0.1 s by
default); 0 tells every success at once: one store write a success, and
"consecutive" exact at the onset too.

``--ops`` prints the store operations per call and per second of each rule
(consecutive, failure rate, slow calls) at each rate, healthy and at 30 %
failures, with the rules that the code knows, set so that the breaker stays
closed (its cost while it counts); the per-process count-based window of
older versions did no store I/O.

Printed, never asserted; the fake clock makes every run the same (``--seed``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NAME = "questdb"
PROCESSES = 4
FAILURE_SHARE = 0.3
THRESHOLD = 5


def configure_django() -> None:
    import logging

    import django
    from django.conf import settings

    if settings.configured:
        return
    quiet = logging.getLogger("resilience")  # the simulation trips breakers on purpose
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    settings.configure(
        INSTALLED_APPS=["resilience"],
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        LOGGING_CONFIG=None,
    )
    django.setup()


class CountingClient:
    """A process's cache client that counts its operations (every call is one round trip)."""

    OPERATIONS = ("get", "get_many", "set", "set_many", "add", "delete", "touch", "incr")

    def __init__(self, client: Any, tally: Counter) -> None:
        self._client = client
        self._tally = tally

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in self.OPERATIONS:
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._tally[name] += 1
            return attribute(*args, **kwargs)

        return counted


class Simulation:
    """One trial: four processes, one cache, one true clock."""

    def __init__(
        self, rule: dict[str, Any], *, atomic: bool = True, success_interval: float = 0.1
    ) -> None:
        from resilience.breaker import CircuitBreaker
        from resilience.clock import FakeClock
        from resilience.stores import CacheStore
        from testkit.simulated import Client, Memory, SkewedClock

        self.true = FakeClock()
        self.memory = Memory(self.true, atomic_incr=atomic)
        self.ops: Counter = Counter()
        self.breakers = []
        for _ in range(PROCESSES):
            clock = SkewedClock(self.true, 0.0)
            store = CacheStore(
                cache=CountingClient(Client(self.memory), self.ops),
                clock=clock,
                recover_inline=True,
                success_interval=success_interval,
            )
            settings = {"failure_threshold": THRESHOLD, "recovery_timeout": 30.0, **rule}
            self.breakers.append(CircuitBreaker(NAME, store=store, clock=clock, **settings))
        self.outcomes: list[bool] = []  # True: failed, in true order, every process

    def run_of_failures(self) -> int:
        run = 0
        for failed in reversed(self.outcomes):
            if not failed:
                break
            run += 1
        return run

    def call(self, breaker: Any, failed: bool, seconds: float | None = None) -> bool:
        """One call; True when it left the breaker open."""
        from resilience.errors import CircuitOpenError

        try:
            permit = breaker.acquire()
        except CircuitOpenError:
            return True
        self.outcomes.append(failed)
        extra = {} if seconds is None else {"seconds": seconds}
        if failed:
            refused = ConnectionRefusedError(111, "Connection refused")
            breaker.record_failure(refused, permit, **extra)
        else:
            breaker.record_success(permit, **extra)
        return breaker.record.state.value == "open"


def trial(
    rate: float,
    seconds: float,
    rng: random.Random,
    rule: dict[str, Any],
    *,
    share: float = FAILURE_SHARE,
    slow: Callable[[random.Random], float | None] = lambda rng: None,
    healthy_first: float = 0.0,
    success_interval: float = 0.1,
) -> tuple[int | None, int, Counter, int]:
    """(the fleet-wide run it opened on, or None; calls made; store operations; warm-up ops)."""
    sim = Simulation(rule, success_interval=success_interval)
    gap = 1.0 / rate
    for breaker in sim.breakers:  # each process has looked at the store once
        breaker.state  # noqa: B018 - reading the state syncs
    warmup = sum(sim.ops.values())
    calls = int(rate * (healthy_first + seconds))
    for index in range(calls):
        sim.true.advance(gap)
        breaker = rng.choice(sim.breakers)
        failing = index >= rate * healthy_first and rng.random() < share
        if sim.call(breaker, failing, slow(rng)):
            return sim.run_of_failures(), len(sim.outcomes), sim.ops, warmup
    return None, len(sim.outcomes), sim.ops, warmup


def consecutive_table(args: argparse.Namespace) -> None:
    onset = f", after {args.healthy_first:g} s without failures" if args.healthy_first else ""
    onset += f", SUCCESS_INTERVAL {args.success_interval:g} s"
    print(f"{PROCESSES} processes, {FAILURE_SHARE:.0%} failures, threshold {THRESHOLD}, "
          f"{args.trials} trials of {args.seconds:g} s each, seed {args.seed}{onset}")  # fmt: skip
    print(f"{'calls/s':>8} {'opened':>8} {'runs it opened on':>40} {'shortest':>9} {'ops/s':>7}")
    for rate in args.rates:
        rng = random.Random(f"{args.seed}-{rate}")
        runs, spent = [], []
        for _ in range(args.trials):
            run, _, ops, warmup = trial(rate, args.seconds, rng, {},
                                        healthy_first=args.healthy_first,
                                        success_interval=args.success_interval)  # fmt: skip
            spent.append((sum(ops.values()) - warmup) / (args.healthy_first + args.seconds))
            if run is not None:
                runs.append(run)
        shown = ", ".join(f"{n}x{run}" for run, n in sorted(Counter(runs).items())) or "-"
        shortest = min(runs) if runs else "-"
        ops_s = statistics.median(spent)
        print(f"{rate:>8g} {len(runs):>5}/{args.trials:<2} {shown:>40} {shortest:>9} {ops_s:>7.0f}")


def rules() -> dict[str, dict[str, Any]]:
    """The rules this version of the breaker knows, as constructor settings."""
    from dataclasses import fields

    from resilience.conf import BreakerConfig

    known = {f.name for f in fields(BreakerConfig)}
    # Counting as they do, never reaching the threshold: the cost of a fleet that stays closed.
    found = {"consecutive": {"failure_threshold": 10**6}}
    if "window" in known:
        found["failure rate"] = {"failure_threshold": None, "failure_rate": 50.0, "window": 10}
        found["slow calls"] = {
            "failure_threshold": None,
            "slow_call_rate": 50.0,
            "slow_call_duration": 1.0,
            "window": 10,
        }
        found["all three"] = {
            "failure_rate": 50.0,
            "slow_call_rate": 50.0,
            "slow_call_duration": 1.0,
            "window": 10,
        }
    return found


def ops_table(args: argparse.Namespace) -> None:
    print(f"\nstore operations ({PROCESSES} processes, {args.seconds:g} s, warm-up excluded)")
    print(f"{'rule':14} {'calls/s':>8} {'failures':>9} {'ops/call':>9} {'ops/s':>9}  by kind")
    for label, rule in rules().items():
        # Slow calls need each call's duration: 10 ms, well under SLOW_CALL_DURATION.
        timing = (lambda rng: 0.01) if "slow_call_duration" in rule else (lambda rng: None)
        for rate in args.rates:
            for share in (0.0, FAILURE_SHARE):
                rng = random.Random(f"{args.seed}-{rate}-{share}")
                per_call, per_second, kinds = [], [], Counter()
                for _ in range(3):
                    _, calls, ops, warmup = trial(rate, args.seconds, rng, rule, share=share,
                                                  slow=timing)  # fmt: skip
                    spent = sum(ops.values()) - warmup
                    per_call.append(spent / max(1, calls))
                    per_second.append(spent / args.seconds)
                    kinds.update(ops)
                shown = " ".join(f"{k}:{v // 3}" for k, v in sorted(kinds.items()))
                print(f"{label:14} {rate:>8g} {share:>9.0%} {statistics.median(per_call):>9.2f} "
                      f"{statistics.median(per_second):>9.0f}  {shown}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rates", default="10,40,100,1000")
    parser.add_argument("--seed", default="questdash")
    parser.add_argument("--ops", action="store_true", help="store operations of each rule")
    parser.add_argument("--healthy-first", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--success-interval", type=float, default=0.1, metavar="SECONDS")
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",")]
    configure_django()
    consecutive_table(args)
    if args.ops:
        ops_table(args)


if __name__ == "__main__":
    main()
