"""The reporter: one thread per process that serves (or runs Celery) that publishes its figures.

Every breaker's calls are counted from the breaker's first use, in any
process. The thread that publishes them to the shared store starts in a
process whose program says it serves (gunicorn, uWSGI, runserver, Celery...,
or ``RESILIENCE["PROCESS_ROLE"]``), and in any other one at its first
request (Django's ``request_started``), whatever server runs it: a
wsgiref or waitress script, mod_wsgi, granian. Django's test client does
not count as serving.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from typing import TYPE_CHECKING, Any

from ..logs import log_failure
from .channel import HEARTBEAT, MINUTE, Channel

if TYPE_CHECKING:
    from ..breaker import CircuitBreaker
    from ..stores import BreakerStore

logger = logging.getLogger("resilience.fleet")


class Reporter:
    """Publishes this process's figures for every watched breaker, every ``interval`` seconds."""

    def __init__(self) -> None:
        self._channels: dict[int, Channel] = {}  # by id(store)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.interval = 0.0
        self.wanted = 0.0  # the interval to publish at, once this process serves
        self.serving = False
        self._last_warning = -math.inf

    def channel(self, store: BreakerStore) -> Channel:
        found = self._channels.get(id(store))
        if found is None or found.store is not store:
            with self._lock:
                found = self._channels.get(id(store))
                if found is None or found.store is not store:
                    found = self._channels[id(store)] = Channel(store)
        return found

    def watch(
        self, breaker: CircuitBreaker, *, interval: float, heartbeat: float = HEARTBEAT
    ) -> None:
        """Report ``breaker``'s figures from now on; a positive interval starts the thread."""
        channel = self.channel(breaker.store)
        channel.add(breaker)
        channel.heartbeat = heartbeat
        if interval > 0:
            self.interval = float(interval)
            self._start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _start(self) -> None:
        with self._lock:
            if self.running:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="resilience-fleet", daemon=True
            )
            self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        from django.db import close_old_connections

        while not stop.wait(self.interval):
            with contextlib.suppress(Exception):
                close_old_connections()  # the database cache's connection, if it broke
            self.tick()

    def tick(self) -> None:
        """One report: every watched breaker's view refreshed (when due), then published."""
        for channel in list(self._channels.values()):
            try:
                for breaker in list(channel.breakers.values()):
                    breaker.state  # noqa: B018 - refreshes from the store when due, announces
                channel.publish()
            except Exception as exc:  # noqa: BLE001 - the reporter must outlive any one failure
                self._warn(channel, exc)

    def _warn(self, channel: Channel, exc: Exception) -> None:
        now = channel.store.clock.monotonic()
        if now - self._last_warning < MINUTE:
            return
        self._last_warning = now
        log_failure(logger, "resilience.fleet.report_failed", exc,
                    operation="report fleet figures", level=logging.WARNING)  # fmt: skip

    def serve(self) -> None:
        """This process answers requests: publish what it counts from now on."""
        if self.serving:
            return
        self.serving = True
        if self.wanted > 0 and self._channels:
            self.interval = self.wanted
            self._start()

    def forget(self) -> None:
        """Stop reporting and forget every channel (settings changed; a test's clean slate)."""
        self._stop.set()
        with self._lock:
            self._channels.clear()
            self._thread = None
        self.serving = False

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        was_running = self._thread is not None
        self._thread = None
        for channel in self._channels.values():
            channel.after_fork()
        if was_running and self.interval > 0:
            self._start()


_reporter = Reporter()


def reporter() -> Reporter:
    return _reporter


def watch(breaker: CircuitBreaker, *, interval: float | None = None) -> None:
    """Count ``breaker``'s calls for the fleet from now on, and publish them every
    ``interval`` seconds (``FLEET_REPORT_INTERVAL``) once this process serves; an
    explicit ``interval`` publishes from now on.

    An idle process still writes every third of ``FLEET_PROCESS_TIMEOUT``, so
    that it stays on the page's list of live processes.
    """
    from ..conf import get_config
    from ..process import reports_to_fleet

    config = get_config()
    explicit = interval is not None
    if interval is None:
        interval = float(config["FLEET_REPORT_INTERVAL"])
    heartbeat = max(interval, float(config["FLEET_PROCESS_TIMEOUT"]) / 3)
    _reporter.wanted = interval
    publish = explicit or _reporter.serving or reports_to_fleet()
    _reporter.watch(breaker, interval=interval if publish else 0.0, heartbeat=heartbeat)


def request_started(sender: Any, **kwargs: Any) -> None:
    """Django's ``request_started``: a process that serves publishes its figures."""
    if _reporter.serving or getattr(sender, "__module__", "") == "django.test.client":
        return
    _reporter.serve()


os.register_at_fork(after_in_child=lambda: _reporter.after_fork())
