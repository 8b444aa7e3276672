"""Nanoseconds per call through a circuit breaker: ours against pybreaker 1.4, side by side.

    .venv/bin/python benchmarks/bench_breaker.py [--rounds 7] [--quick]

Measures the closed path (the call goes through) and the open path (the call
is refused) for: a bare call; our breaker on LocalStore, with the default
rule (consecutive failures) and with every rule on (failure rate and slow
calls over a 10 s window, timed calls, two probes to close); the same on
CacheStore over Redis; pybreaker with its memory storage; pybreaker with
CircuitRedisStorage. Each round measures every contender once, in turn, and
the table shows the median over the rounds, then our ratios to pybreaker.
Targets (same run, issue 20): closed <= 0.2x pybreaker's (memory storage)
with the rules off, <= 0.3x with them on; open <= 0.5x.

Our breakers run with fleet recording on, as in a web or Celery process:
each call bumps its outcome's counter, and the fleet reporter thread
(resilience/fleet.py) publishes the counts every second, to Redis for the
CacheStore. ``--no-fleet`` measures without the reporter.

Redis: REDIS_URL if set, else a redis-server this script starts on a free
port and stops at the end. Django is configured here (settings.configure),
so no project, database or QuestDB is needed. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found (apt-get install redis-server), or set REDIS_URL")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as workdir:
        server = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.terminate()
            server.wait(10)


def configure_django(url: str) -> None:
    import logging

    import django
    from django.conf import settings

    quiet = logging.getLogger("resilience")  # the benchmark trips breakers on purpose
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False

    settings.configure(
        INSTALLED_APPS=["resilience"],
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
        },
        LOGGING_CONFIG=None,
    )
    django.setup()


def per_call_ns(fn: Callable[[], None], calls: int) -> float:
    started = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - started) / calls


def loop_closed(call: Callable, target: Callable, calls: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(calls):
            call(target)

    return run


def loop_open(call: Callable, target: Callable, calls: int, error: type) -> Callable[[], None]:
    def run() -> None:
        for _ in range(calls):
            try:  # noqa: SIM105 - contextlib.suppress would add its own cost to the timing
                call(target)
            except error:
                pass

    return run


FLEET_INTERVAL = 1.0  # seconds between the fleet reporter's publications (the default)
# Every rule of issue 20 on: each call is timed, counted into the window, looked at twice a second.
RULES = {
    "failure_rate": 50,
    "slow_call_rate": 50,
    "slow_call_duration": 1.0,
    "window": 10,
    "half_open_max_calls": 2,
    "success_threshold": 2,
}


def target() -> int:
    return 1


def build(
    url: str, fast: int, slow: int, *, fleet_on: bool = True
) -> dict[str, tuple[Callable, Callable, int]]:
    """name -> (closed loop, open loop, calls per loop)."""
    import pybreaker
    import redis

    from resilience import fleet
    from resilience.breaker import CircuitBreaker
    from resilience.errors import CircuitOpenError
    from resilience.stores import CacheStore, LocalStore

    def ours(store, **rules) -> tuple[CircuitBreaker, CircuitBreaker]:
        tag = f"{store.kind}{'-rules' if rules else ''}"
        closed = CircuitBreaker(f"bench-closed-{tag}", store=store, **rules)
        opened = CircuitBreaker(f"bench-open-{tag}", store=store, recovery_timeout=3600, **rules)
        if fleet_on:  # what the registry does in a web or Celery process
            fleet.watch(closed, interval=FLEET_INTERVAL)
            fleet.watch(opened, interval=FLEET_INTERVAL)
        for _ in range(opened.failure_threshold):
            with contextlib.suppress(ConnectionRefusedError):
                opened.call(_refuse)
        assert opened.public_state == "open"
        return closed, opened

    def pyb(storage_factory) -> tuple[pybreaker.CircuitBreaker, pybreaker.CircuitBreaker]:
        closed = pybreaker.CircuitBreaker(state_storage=storage_factory("closed"))
        opened = pybreaker.CircuitBreaker(reset_timeout=3600, state_storage=storage_factory("open"))
        opened.open()
        return closed, opened

    client = redis.Redis.from_url(url)
    client.flushdb()
    cache_store = CacheStore()
    local_closed, local_open = ours(LocalStore())
    rules_closed, rules_open = ours(LocalStore(), **RULES)
    cache_closed, cache_open = ours(cache_store)
    cache_rules_closed, cache_rules_open = ours(cache_store, **RULES)
    mem_closed, mem_open = pyb(lambda tag: pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED))
    red_closed, red_open = pyb(
        lambda tag: pybreaker.CircuitRedisStorage(
            pybreaker.STATE_CLOSED, client, namespace=f"bench-{tag}"
        )
    )
    pyb_error, open_error = pybreaker.CircuitBreakerError, CircuitOpenError
    rows = [
        ("ours, LocalStore", local_closed, local_open, CircuitOpenError, fast),
        ("ours, LocalStore, rules on", rules_closed, rules_open, CircuitOpenError, fast),
        ("ours, CacheStore (Redis)", cache_closed, cache_open, CircuitOpenError, fast),
        ("ours, CacheStore, rules on", cache_rules_closed, cache_rules_open, open_error, fast),
        ("pybreaker 1.4, memory", mem_closed, mem_open, pyb_error, fast),
        ("pybreaker 1.4, Redis", red_closed, red_open, pyb_error, slow),
    ]
    bare = loop_closed(lambda f: f(), target, fast)
    contenders = {"bare call": (bare, bare, fast)}
    for label, closed, opened, error, calls in rows:
        contenders[label] = (
            loop_closed(closed.call, target, calls),
            loop_open(opened.call, target, calls, error),
            calls,
        )
    return contenders


def _ratio(value: float) -> str:
    return f"{value:7.2f}x" if value >= 0.01 else f"{value:7.4f}x"


def _refuse() -> None:
    raise ConnectionRefusedError(111, "Connection refused")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="fewer calls per round")
    parser.add_argument("--no-fleet", action="store_true", help="without the fleet reporter")
    args = parser.parse_args()
    fast, slow = (20_000, 300) if args.quick else (200_000, 2_000)

    with redis_url() as url:
        configure_django(url)
        contenders = build(url, fast, slow, fleet_on=not args.no_fleet)
        results: dict[str, dict[str, list[float]]] = {
            name: {"closed": [], "open": []} for name in contenders
        }
        for closed, opened, calls in contenders.values():  # warm up
            per_call_ns(closed, calls)
            per_call_ns(opened, calls)
        for _ in range(args.rounds):
            for name, (closed, opened, calls) in contenders.items():
                results[name]["closed"].append(per_call_ns(closed, calls))
                results[name]["open"].append(per_call_ns(opened, calls))

    median = {
        name: {path: statistics.median(values) for path, values in paths.items()}
        for name, paths in results.items()
    }
    print(f"Python {sys.version.split()[0]}, median of {args.rounds} rounds, ns per call")
    if args.no_fleet:
        print("fleet recording: off\n")
    else:
        from resilience.fleet import reporter

        writes = "running" if reporter().running else "NOT running"
        print(f"fleet recording: on (reporter thread {writes}, publishing every "
              f"{FLEET_INTERVAL:g} s)\n")  # fmt: skip
    print(f"{'':30} {'closed path':>12} {'open path':>12}")
    for name, paths in median.items():
        opened = "-" if name == "bare call" else f"{paths['open']:,.0f}"
        print(f"{name:30} {paths['closed']:12,.0f} {opened:>12}")
    print()
    pairs = [
        ("ours, LocalStore", "pybreaker 1.4, memory"),
        ("ours, LocalStore, rules on", "pybreaker 1.4, memory"),
        ("ours, CacheStore (Redis)", "pybreaker 1.4, memory"),
        ("ours, CacheStore, rules on", "pybreaker 1.4, memory"),
        ("ours, CacheStore (Redis)", "pybreaker 1.4, Redis"),
    ]
    print(f"{'ratio':56} {'closed':>8} {'open':>8}")
    for ours, theirs in pairs:
        closed = median[ours]["closed"] / median[theirs]["closed"]
        opened = median[ours]["open"] / median[theirs]["open"]
        print(f"{ours + ' / ' + theirs:56} {_ratio(closed)} {_ratio(opened)}")
    print("\ntargets: closed <= 0.20x (rules off) and <= 0.30x (rules on), open <= 0.50x "
          "pybreaker's (memory storage)")  # fmt: skip


if __name__ == "__main__":
    main()
