"""A real PostgreSQL server for the tests: Debian's ``postgresql``, a cluster of our own;
and guarded aliases to such servers, and reads through the replica router.

``PostgresServer`` makes a throwaway cluster with initdb on a free port, starts
it with pg_ctl, and lets a test stop it (refused), start it again, or pause
it (SIGSTOP to the postmaster and every backend: the kernel still accepts
connections, nobody answers). As root, as in CI, PostgreSQL refuses to run,
so initdb and pg_ctl run as Debian's ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from django.db import connections

from resilience.conf import get_config
from resilience.deadline import Deadline, deadline_scope
from resilience.errors import GuardedCallError
from resilience.models import CircuitBreaker as Row

from .ports import free_port
from .processes import pause_process


def binary(name: str) -> str:
    """A PostgreSQL program: Debian keeps them under /usr/lib/postgresql/<version>/bin."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version)
    path = found[-1] if found else shutil.which(name)
    if not path:
        raise RuntimeError(f"{name} not found: apt-get install postgresql (scripts/test.sh does)")
    return path


def _version(path: str) -> float:
    try:
        return float(Path(path).parts[-3])
    except ValueError:
        return 0.0


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a postmaster's backends and workers)."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(Path(stat).read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(Path(stat).parent.name))
    return found


@dataclass
class PostgresServer:
    """A cluster on 127.0.0.1:``port`` in ``datadir``, trust authentication, user ``postgres``."""

    port: int = field(default_factory=free_port)
    datadir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pg-")))
    user: str = "postgres"
    paused_pids: list[int] = field(default_factory=list, repr=False)

    def _run(self, *command: str) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            command = ("runuser", "-u", "postgres", "--", *command)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"{Path(command[-1]).name} failed: {done.stderr[-2000:]}")
        return done

    def init(self) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.datadir, entry.pw_uid, entry.pw_gid)
        self._run(binary("initdb"), "--auth=trust", f"--username={self.user}", "--encoding=UTF8",
                  "--no-sync", "-D", str(self.datadir))  # fmt: skip

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")  # fmt: skip
        self._run(binary("pg_ctl"), "-D", str(self.datadir), "-o", options, "-l",
                  str(self.datadir / "server.log"), "-w", "-t", "30", "start")  # fmt: skip

    def stop(self) -> None:
        """Stopped at once (immediate: no goodbye to the clients); its port refuses."""
        self.resume()
        self._run(binary("pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop")

    @property
    def pid(self) -> int:
        return int((self.datadir / "postmaster.pid").read_text().split()[0])

    def pause(self) -> None:
        """Every process of the cluster stopped: connections are accepted (by the kernel),
        and nothing answers, neither new connections nor the ones in use."""
        pids = [self.pid, *children(self.pid)]
        for pid in pids:
            pause_process(pid)
        self.paused_pids = pids

    def resume(self) -> None:
        while self.paused_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.paused_pids.pop(), signal.SIGCONT)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={dbname}"

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        with psycopg.connect(self.dsn(dbname), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    def accepts(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return True
        return False

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A new cluster, started, for the block; removed after."""
    server = PostgresServer()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()


# --- guarded aliases to these servers, and reads through the replica router ---------------


def guarded_alias(port: int) -> dict[str, Any]:
    """DATABASES settings of a guarded PostgreSQL alias to database ``app`` on ``port``."""
    return {
        "ENGINE": "resilience.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": port,
        "NAME": "app",
        "USER": "postgres",
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }


@contextlib.contextmanager
def database_aliases(**aliases: dict[str, Any]) -> Iterator[None]:
    """``connections`` knows these aliases for the block (DATABASES is read once, at startup)."""
    configured = connections.configure_settings({"default": {}, **aliases})
    for alias in aliases:
        connections.settings[alias] = configured[alias]
    try:
        yield
    finally:
        for alias in aliases:
            connections[alias].close()
            del connections[alias]
            del connections.settings[alias]


def source() -> str:
    """One read through the ORM and the router: the server that answered."""
    return Row.objects.get().name


@dataclass
class Reads:
    """What a stream of requests saw: the server each read came from (or the error)."""

    answers: list[tuple[float, float, str]] = field(default_factory=list)  # started, took, source

    def request(self) -> None:
        """One request: a deadline as the middleware sets, one read, connections checked at its
        edges as Django's request signals do."""
        started = time.monotonic()
        for alias in ("pg_primary", "pg_replica"):
            connections[alias].close_if_unusable_or_obsolete()
        with deadline_scope(Deadline(get_config()["REQUEST_DEADLINE"])):
            try:
                answer = source()
            except GuardedCallError as exc:
                answer = f"error: {exc.error_type}"
        self.answers.append((started, time.monotonic() - started, answer))

    def run(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.request()
            time.sleep(0.02)

    def through(
        self, begin: Callable[[], Any], end: Callable[[], Any], seconds: float
    ) -> tuple[float, float]:
        """Requests for ``seconds`` of a fault (``end`` runs whatever happens): the moments
        the fault began and ended."""
        began = time.monotonic()
        begin()
        try:
            self.run(seconds)
        finally:
            end()
        return began, time.monotonic()

    @property
    def worst(self) -> float:
        return max(took for _, took, _ in self.answers)

    def sources(self, since: float = 0.0) -> list[str]:
        return [answer for started, _, answer in self.answers if started >= since]


def faults(
    pg_replica: PostgresServer, replica_proxy: Any = None
) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """Each way the replica goes away: (begin, end). "cut off" needs its Toxiproxy proxy."""

    def cut_off():
        replica_proxy.set_enabled(False)  # live connections dropped...
        replica_proxy.blackhole()  # ...and new ones hang before the handshake ends
        replica_proxy.set_enabled(True)

    return {
        "stopped": (pg_replica.stop, pg_replica.start),
        "paused": (pg_replica.pause, pg_replica.resume),
        "cut off": (cut_off, replica_proxy.heal if replica_proxy else None),
    }
