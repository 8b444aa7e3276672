"""A real process with breakers on a real Redis, driven by JSON lines on stdin.

Run as ``python -m testkit.redis_worker`` with ``REDIS_URL`` set. It
configures minimal Django settings itself (no project, no database), builds
breakers on one ``CacheStore`` (as a web worker would), and answers each
command with one JSON line on stdout; ``WorkerProcess`` (below) is the
test's handle on one. Used by test_redis_processes.py and
test_redis_faults.py. ``REDIS_SOCKET_TIMEOUT`` (seconds, 0.5 by default) is
the cache's socket and connect timeout: the one wait a hung Redis may cost.

Times it reports are this host's ``time.time()`` (``at``) unless named
otherwise; durations are measured on ``time.monotonic()``. A worker may run
under faketime: then ``at`` is its own (shifted) clock, on purpose, and so is
its ``time.monotonic()`` (libfaketime's ``FAKETIME_DONT_FAKE_MONOTONIC`` makes
``time.sleep`` fail with EINVAL): compare its durations, not its instants.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import django
from django.conf import settings

OUTAGE_RETRY_INTERVAL = 0.5  # seconds between tries of a Redis that went away


class Counting(logging.Handler):
    """Counts the JSON events this process logged, by event type."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event_type", record.name)
        self.counts[event] = self.counts.get(event, 0) + 1


def configure() -> Counting:
    timeout = float(os.environ.get("REDIS_SOCKET_TIMEOUT", "0.5"))
    settings.configure(
        INSTALLED_APPS=["resilience"],
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": os.environ["REDIS_URL"],
                "OPTIONS": {"socket_connect_timeout": timeout, "socket_timeout": timeout},
            }
        },
        RESILIENCE={
            "STORE": "resilience.stores.CacheStore",
            "STORE_OPTIONS": {"SYNC_INTERVAL": 0.5, "OUTAGE_RETRY_INTERVAL": OUTAGE_RETRY_INTERVAL},
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
        started = time.monotonic()
        result = self._one(self.breakers[name], outcome)
        took = time.monotonic() - started
        state = self.breakers[name].public_state
        return {
            "result": result,
            "at": time.time(),
            "mono": time.monotonic(),
            "took": took,
            "state": state,
        }

    @staticmethod
    def _one(breaker: Any, outcome: str) -> str:
        """One call through ``breaker`` that succeeds or is refused at once: what became of it."""
        from resilience.errors import CircuitOpenError

        def run() -> str:
            if outcome == "fail":
                raise ConnectionRefusedError(111, "Connection refused")
            return "ok"

        try:
            breaker.call(run)
        except ConnectionRefusedError:
            return "failed"
        except CircuitOpenError as exc:
            return "rejected:" + exc.reason
        return "ok"

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
        breaker = self.breakers[name]
        snapshot = breaker.snapshot()
        rec = breaker.record
        return snapshot.as_dict() | {
            "epoch": snapshot.epoch,
            "uid": rec.uid,
            "forced": rec.forced,
            "opened_at_s": rec.opened_at,  # as epoch seconds ("opened_at" is ISO-8601)
            "open_until": rec.open_until,
            "store_now": self.store.now(),
            "mono": time.monotonic(),
            "outage_retry_interval": self.store.shared_cache.retry_interval,
        }

    def force(self, name: str, action: str) -> dict:
        """An operator's decision: ``open``, ``closed`` (disabled) or ``reset``."""
        breaker = self.breakers[name]
        {"open": breaker.force_open, "closed": breaker.force_closed, "reset": breaker.reset}[
            action
        ]()
        return self.snapshot(name)

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

    def storm(
        self, name: str, threads: int, seconds: float, outcome: str, pace: float = 0.01
    ) -> dict:
        """``threads`` threads call for ``seconds``; every call as [thread, start, took, result].

        Starts and durations are on ``time.monotonic()``, which every process
        of this host shares (so the test can place them against the moment it
        paused Redis).
        """
        breaker = self.breakers[name]
        until = time.monotonic() + seconds
        calls: list[list] = []
        lock = threading.Lock()

        def run(thread: int) -> None:
            mine = []
            while (started := time.monotonic()) < until:
                result = self._one(breaker, outcome)
                mine.append([thread, started, time.monotonic() - started, result])
                time.sleep(pace)
            with lock:
                calls.extend(mine)

        crowd = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
        for thread in crowd:
            thread.start()
        for thread in crowd:
            thread.join()
        return {"calls": calls, "pid": os.getpid()}

    def watch_open(self, name: str, seconds: float, pace: float = 0.01) -> dict:
        """Succeeding calls until one goes through after a refusal: how long after this
        command came was this process first refused, and let through again? (Seconds, so
        that a process under faketime, whose every clock is shifted, answers the same.)"""
        breaker = self.breakers[name]
        began = time.monotonic()
        refused = through = None
        while (now := time.monotonic() - began) < seconds:
            result = self._one(breaker, "ok")
            if result.startswith("rejected"):
                refused = refused or now
            elif refused is not None:
                through = now
                break
            time.sleep(pace)
        return {"refused": refused, "through": through}

    def fetch(self, query: str, fresh_for: float, data: list | None, wait: float = 0.0) -> dict:
        """One read of a last-good-copy query whose loader returns ``data``, or is refused
        (None); the envelope, with ``cached_at`` as epoch seconds. ``wait`` seconds of
        budget for another's refresh."""
        from resilience.fallback import CachedFallback

        def loader() -> list:
            if data is None:
                raise ConnectionRefusedError(111, "Connection refused")
            return data

        fallback = CachedFallback(
            query,
            loader,
            breaker_name=f"fetch-{query}",
            runner=lambda operation, fn: fn(),
            fresh_for=fresh_for,
        )
        fallback.call_deadline = wait
        started = time.monotonic()
        envelope = fallback.get()
        return {
            "took": time.monotonic() - started,
            "status": envelope.status,
            "data": envelope.data,
            "cached_at": envelope.cached_at.timestamp() if envelope.cached_at else None,
            "reason": envelope.reason,
            "age": envelope.age,
            "at": time.time(),
            "store_now": self.store.now(),
        }


# --- the test's side: a handle on one worker process --------------------------------------

ROOT = Path(__file__).resolve().parents[1]


class WorkerProcess:
    """One worker process; ``ask`` sends a command and waits for its JSON answer.

    ``env`` adds variables (``REDIS_SOCKET_TIMEOUT``, faketime's); ``prefix``
    runs the interpreter under another command (``faketime -f +600s``).
    """

    def __init__(
        self,
        redis_url: str,
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        environ["REDIS_URL"] = redis_url
        environ.update(env or {})
        self.stderr = open(log_dir / f"worker-{uuid.uuid4().hex[:8]}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "testkit.redis_worker"],
            cwd=ROOT,
            env=environ,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            bufsize=1,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 30) -> None:
        assert "ready" in self.read(timeout)

    def send(self, cmd: str, **args: Any) -> None:
        self.process.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.process.stdin.flush()

    def read(self, timeout: float = 20) -> dict:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        assert ready, f"worker {self.process.pid} did not answer in {timeout} s"
        answer = json.loads(self.process.stdout.readline())
        assert "error" not in answer, answer
        return answer

    def ask(self, cmd: str, **args: Any) -> dict:
        self.send(cmd, **args)
        return self.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.send("quit")
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.stderr.close()


def start_workers(redis_url: str, log_dir: Path, count: int, **options: Any) -> list[WorkerProcess]:
    """``count`` workers, ready (each has configured Django and its store)."""
    workers = [WorkerProcess(redis_url, log_dir, **options) for _ in range(count)]
    for worker in workers:
        worker.wait_ready()
    return workers


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
