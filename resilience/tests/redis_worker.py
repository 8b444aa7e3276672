"""A real process with breakers on a real Redis, driven by JSON lines on stdin.

Run as ``python -m resilience.tests.redis_worker`` with ``REDIS_URL`` set. It
configures minimal Django settings itself (no project, no database), builds
breakers on one ``CacheStore`` (as a web worker would), and answers each
command with one JSON line on stdout. Used by test_redis_processes.py.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

import django
from django.conf import settings


class Counting(logging.Handler):
    """Counts the JSON events this process logged, by event type."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event_type", record.name)
        self.counts[event] = self.counts.get(event, 0) + 1


def configure() -> Counting:
    settings.configure(
        INSTALLED_APPS=["resilience"],
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": os.environ["REDIS_URL"],
                "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
            }
        },
        RESILIENCE={
            "STORE": "resilience.stores.CacheStore",
            "STORE_OPTIONS": {"SYNC_INTERVAL": 0.5, "OUTAGE_RETRY_INTERVAL": 0.5},
            "PROCESS_ROLE": os.environ.get("WORKER_ROLE") or None,
            "FLEET_PROCESS_TIMEOUT": float(os.environ.get("FLEET_TIMEOUT") or 15),
        },
        USE_TZ=True,
    )
    django.setup()
    counting = Counting()
    logger = logging.getLogger("resilience")
    logger.addHandler(counting)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return counting


class Worker:
    def __init__(self, counting: Counting) -> None:
        from resilience.conf import get_config
        from resilience.stores import load_store

        config = get_config()
        self.store = load_store(config["STORE"], config["STORE_OPTIONS"])
        self.breakers: dict[str, Any] = {}
        self.permits: dict[int, Any] = {}
        self.counting = counting

    def make(self, name: str, threshold: int, recovery: float, max_calls: int = 1) -> dict:
        from resilience.breaker import CircuitBreaker

        self.breakers[name] = CircuitBreaker(
            name,
            failure_threshold=threshold,
            recovery_timeout=recovery,
            half_open_max_calls=max_calls,
            store=self.store,
        )
        return {"made": name}

    def call(self, name: str, outcome: str = "ok") -> dict:
        from resilience.errors import CircuitOpenError

        breaker = self.breakers[name]

        def run() -> str:
            if outcome == "fail":
                raise ConnectionRefusedError(111, "Connection refused")
            return "ok"

        try:
            breaker.call(run)
            result = "ok"
        except ConnectionRefusedError:
            result = "failed"
        except CircuitOpenError as exc:
            result = "rejected:" + exc.reason
        return {"result": result, "at": time.time(), "state": breaker.public_state}

    def report(self, name: str, interval: float) -> dict:
        """Publish this breaker's figures to the fleet, as a web or Celery process does."""
        from resilience import fleet
        from resilience.process import identity

        fleet.watch(self.breakers[name], interval=interval)
        return {"reporting": identity().actor}

    def burst(self, name: str, ok: int, failed: int) -> dict:
        """``ok`` successful calls and ``failed`` refused ones, each timed as the guard does."""
        breaker = self.breakers[name]
        for outcome, count in (("ok", ok), ("fail", failed)):
            for _ in range(count):
                self.call(name, outcome)
                breaker.note_latency(0.002 if outcome == "ok" else 0.2)
        return {"done": ok + failed}

    def snapshot(self, name: str) -> dict:
        return self.breakers[name].snapshot().as_dict() | {
            "epoch": self.breakers[name].snapshot().epoch
        }

    def events(self) -> dict:
        return dict(self.counting.counts)

    def watch(self, name: str, seconds: float) -> dict:
        """Call on the closed path until the breaker refuses; when did that happen?"""
        from resilience.errors import CircuitOpenError

        breaker = self.breakers[name]
        calls = 0
        until = time.time() + seconds
        while time.time() < until:
            try:
                permit = breaker.acquire()
            except CircuitOpenError:
                return {"rejected_at": time.time(), "calls": calls}
            breaker.record_success(permit)
            calls += 1
        return {"rejected_at": None, "calls": calls}

    def race(self, name: str, start_at: float, seconds: float, hold: float) -> dict:
        """From ``start_at``, keep asking for probes; fail each probe after ``hold``."""
        from resilience.breaker import Probe
        from resilience.errors import CircuitOpenError

        breaker = self.breakers[name]
        time.sleep(max(0.0, start_at - time.time()))
        probes = []
        until = start_at + seconds
        while time.time() < until:
            try:
                permit = breaker.acquire()
            except CircuitOpenError:
                time.sleep(0.002)
                continue
            if isinstance(permit, Probe):
                probes.append(
                    {
                        "epoch": permit.rec.epoch,
                        "window": permit.window,
                        "opened_at": permit.rec.opened_at,
                        "at": time.time(),
                    }
                )
                time.sleep(hold)
                breaker.record_failure(ConnectionRefusedError(111, "still down"), permit)
            else:
                breaker.record_failure(ConnectionRefusedError(111, "still down"), permit)
        return {"probes": probes}


def main() -> None:
    counting = configure()
    worker = Worker(counting)
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        name = command.pop("cmd")
        if name == "quit":
            break
        try:
            answer = getattr(worker, name)(**command)
        except Exception as exc:  # reported to the test, which fails on it
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
