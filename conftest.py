"""Real services for the whole test suite: QuestDB and Redis, started once.

QuestDB is started with the product's own `manage.py questdb` commands.
Redis is Debian's redis-server on a free port. Nothing here skips: a test
that needs a service fails when the service cannot start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pause_process(pid: int, timeout: float = 5.0) -> None:
    """SIGSTOP ``pid`` and return once every one of its threads is stopped: on a busy
    machine the stop may land after the next request was sent, and a test of a hung
    server must not be answered by it."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while not all(_stopped(task) for task in Path(f"/proc/{pid}/task").iterdir()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"process {pid} did not stop within {timeout} s")
        time.sleep(0.005)


def _stopped(task: Path) -> bool:
    """The thread is stopped (state T), or gone."""
    try:
        stat = (task / "stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


@dataclass
class RedisServer:
    """A real redis-server that tests may stop and start again on the same port."""

    port: int
    workdir: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: apt-get install redis-server")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGCONT)  # a paused server cannot exit
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    @property
    def pid(self) -> int:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"redis-server on port {self.port} is not running")
        return self.process.pid

    def pause(self) -> None:
        """SIGSTOP this very redis-server (its pid, nothing else): it accepts connections
        (the kernel does) but answers nothing, as a hung server does."""
        pause_process(self.pid)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    @contextlib.contextmanager
    def paused(self) -> Iterator[float]:
        """Paused for the block (resumed whatever happens in it); yields when it began."""
        self.pause()
        try:
            yield time.monotonic()
        finally:
            self.resume()

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(port=free_port(), workdir=tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def toxiproxy() -> Iterator[Any]:
    """A real Toxiproxy, once per session, for the network faults of any suite."""
    from tests.toxiproxy import Toxiproxy

    server = Toxiproxy(port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def questdb_server(django_db_blocker) -> Iterator[None]:
    """The real QuestDB on the test ports, started and seeded by the product's commands."""
    from django.core.management import call_command

    with django_db_blocker.unblock():
        call_command("questdb", "fetch")
        call_command("questdb", "start")
        call_command("questdb", "seed")
    yield
    call_command("questdb", "stop")


@pytest.fixture(scope="session", autouse=True)
def no_password_in_any_log_line() -> Iterator[None]:
    """Every log record of the run, tracebacks included, rendered as the product renders
    it, is searched for the QuestDB password (a distinctive one in tests/settings.py)."""
    import logging

    from django.conf import settings

    from resilience.logs import JsonFormatter

    password = getattr(settings, "QUESTDB_PASSWORD", None)  # the app's own settings have none
    leaks: list[str] = []

    class Canary(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = self.format(record)
            if password and password in text:
                leaks.append(text)

    canary = Canary(level=logging.DEBUG)
    canary.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(name) for name in ("resilience", "questdash")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)  # tracebacks too
    logging.getLogger().addHandler(canary)
    yield
    logging.getLogger().removeHandler(canary)
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)
    assert not leaks, leaks[:3]
