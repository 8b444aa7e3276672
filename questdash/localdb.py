"""A local QuestDB server for the demo and the tests: fetch, start, stop, status.

The jar comes from Maven Central (one pinned version, checked against the
SHA-256 pinned below, never against a checksum from the same server); data,
config, pid and log live under settings.QUESTDB_DATA_DIR, which git ignores.
The server listens on loopback unless QUESTDB_BIND_HOST says otherwise.
Production runs its own QuestDB; none of this is used there, and ``seed``
refuses any server that ``start`` did not start (``ensure_local``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from .files import write_private

QUESTDB_VERSION = "9.3.4"  # the newest 9.3.x: runs on Java 17 (9.4+ needs Java 25)
# SHA-256 of each supported jar, as Maven Central published it (questdb-<version>.jar.sha256).
JAR_SHA256 = {
    "9.3.4": "939bc53ab22f93dbaa6545143a6e7c536d4904c07b7f2d381e8eef10436be062",
}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MIN_JAVA = 17
MAVEN_CENTRAL = "https://repo.maven.apache.org/maven2/org/questdb/questdb"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class LocalQuestDBError(RuntimeError):
    """Something stops the local QuestDB; the message says what to do."""


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def jar(self) -> Path:
        return self.root / f"questdb-{QUESTDB_VERSION}.jar"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def conf(self) -> Path:
        return self.data / "conf" / "server.conf"

    @property
    def pid(self) -> Path:
        return self.root / "questdb.pid"

    @property
    def log(self) -> Path:
        return self.root / "questdb.log"


@dataclass(frozen=True)
class Status:
    running: bool
    pid: int | None
    ports: dict[str, int]

    def __str__(self) -> str:
        ports = ", ".join(f"{name} {port}" for name, port in self.ports.items())
        if self.running:
            return f"QuestDB {QUESTDB_VERSION} is running (pid {self.pid}; {ports})"
        return f"QuestDB is not running ({ports})"


def paths() -> Paths:
    return Paths(Path(settings.QUESTDB_DATA_DIR))


def ports() -> dict[str, int]:
    return {
        "pg": settings.QUESTDB_PORT,
        "http": settings.QUESTDB_HTTP_PORT,
        "health": settings.QUESTDB_HEALTH_PORT,
        "ilp": settings.QUESTDB_ILP_PORT,
    }


# --- fetch -----------------------------------------------------------------


def fetch() -> Path:
    """Download the pinned jar once; it must match its pinned SHA-256, downloaded or found."""
    jar = paths().jar
    if jar.exists():
        verify_jar(jar)
        return jar
    _make_dir(jar.parent)
    url = f"{MAVEN_CENTRAL}/{QUESTDB_VERSION}/questdb-{QUESTDB_VERSION}.jar"
    partial = jar.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        if shutil.which("mvn"):
            return verify_jar(_fetch_with_maven(jar))
        raise LocalQuestDBError(
            f"Could not download {url}: {exc}. Check access to Maven Central, "
            f"or put the jar at {jar} yourself."
        ) from exc
    try:
        verify_jar(partial, source=url)
    except LocalQuestDBError:
        partial.unlink()
        raise
    partial.rename(jar)
    return jar


def verify_jar(jar: Path, *, source: str | None = None) -> Path:
    """``jar`` if its SHA-256 is the one pinned for QUESTDB_VERSION; else a clear refusal."""
    expected = JAR_SHA256.get(QUESTDB_VERSION)
    if expected is None:
        raise LocalQuestDBError(
            f"No SHA-256 is pinned for QuestDB {QUESTDB_VERSION}: add it to JAR_SHA256 in "
            f"{__name__} (from Maven Central's questdb-{QUESTDB_VERSION}.jar.sha256)."
        )
    digest = hashlib.sha256()
    with jar.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise LocalQuestDBError(
            f"Checksum mismatch for {source or jar}: SHA-256 {digest.hexdigest()}, pinned "
            f"{expected}. The file is not QuestDB {QUESTDB_VERSION} as published: delete it "
            f"and run `python manage.py questdb fetch` again."
        )
    return jar


def _fetch_with_maven(jar: Path) -> Path:
    subprocess.run(
        [
            "mvn", "-q", "dependency:copy",
            f"-Dartifact=org.questdb:questdb:{QUESTDB_VERSION}",
            f"-DoutputDirectory={jar.parent}",
        ],
        check=True,
    )  # fmt: skip
    return jar


# --- java --------------------------------------------------------------------


def find_java() -> str:
    """The java to run: $JAVA_HOME's, else the one on PATH; 17 or newer."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise LocalQuestDBError(
            f"Java not found. Install Java {MIN_JAVA}+ (Debian: apt-get install "
            f"openjdk-17-jre-headless) or set JAVA_HOME."
        )
    major = java_major_version(java)
    if major < MIN_JAVA:
        raise LocalQuestDBError(
            f"{java} is Java {major}; QuestDB {QUESTDB_VERSION} needs Java {MIN_JAVA} or "
            f"newer. Install it or point JAVA_HOME at it."
        )
    return java


def java_major_version(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise LocalQuestDBError(f"Could not read the Java version from: {out.strip()!r}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 else major  # "1.8" means 8


# --- start / stop / status ---------------------------------------------------------


def server_conf() -> str:
    """Ports from settings, on loopback (QUESTDB_BIND_HOST); sized for 2 cores; no telemetry."""
    host = settings.QUESTDB_BIND_HOST
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address, before its port
    p = ports()
    return "\n".join(
        [
            f"http.bind.to={host}:{p['http']}",
            f"http.min.net.bind.to={host}:{p['health']}",
            f"pg.net.bind.to={host}:{p['pg']}",
            f"line.tcp.net.bind.to={host}:{p['ilp']}",
            "line.udp.enabled=false",
            # Line protocol (the demo's price feed) writes only into the tables the seed made:
            # a line for a missing table is refused, never a table made with other columns.
            "line.auto.create.new.tables=false",
            "line.auto.create.new.columns=false",
            f"pg.user={settings.QUESTDB_USER}",
            f"pg.password={settings.QUESTDB_PASSWORD}",
            "pg.readonly.user.enabled=false",
            "telemetry.enabled=false",
            "shared.worker.count=2",
            "pg.worker.count=1",
            "http.worker.count=1",
            "",
        ]
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not running.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _read_pid() -> int | None:
    """The pid in the pid file, if that process is alive and really our QuestDB.

    After a reboot the number may belong to something else: never signal that.
    """
    try:
        pid = int(paths().pid.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    ours = b"io.questdb/io.questdb.ServerMain" in cmdline and str(paths().data).encode() in cmdline
    return pid if ours and _pid_alive(pid) else None


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def answers_select_1(timeout: float = 2.0) -> bool:
    """A plain psycopg probe: used only to wait for the local server to come up."""
    import psycopg

    try:
        with psycopg.connect(
            host="127.0.0.1",
            port=settings.QUESTDB_PORT,
            user=settings.QUESTDB_USER,
            password=settings.QUESTDB_PASSWORD,
            dbname=settings.QUESTDB_DATABASE,
            connect_timeout=max(1, round(timeout)),
            autocommit=True,
        ) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.Error:
        return False


def status() -> Status:
    pid = _read_pid()
    return Status(running=pid is not None, pid=pid, ports=ports())


def start(timeout: float = START_TIMEOUT) -> Status:
    """Start QuestDB in the background and wait until it answers SELECT 1."""
    current = status()
    if current.running:
        if not _wait_until_ready(current.pid, timeout):
            raise LocalQuestDBError(f"QuestDB (pid {current.pid}) runs but does not answer.")
        return current
    p = paths()
    if not p.jar.exists():
        raise LocalQuestDBError(f"{p.jar} is missing: run `python manage.py questdb fetch` first.")
    java = find_java()
    for name, port in ports().items():
        if _port_open(port):
            raise LocalQuestDBError(
                f"Port {port} ({name}) is already taken by another process. Stop it, or "
                f"choose other ports (QUESTDB_PORT, QUESTDB_HTTP_PORT, QUESTDB_HEALTH_PORT, "
                f"QUESTDB_ILP_PORT)."
            )
    _make_dir(p.conf.parent)
    write_private(p.conf, server_conf())  # it holds the PG password
    command = [
        java,
        f"-Xms{settings.QUESTDB_HEAP}",
        f"-Xmx{settings.QUESTDB_HEAP}",
        "-XX:+UseParallelGC",
        "-XX:ActiveProcessorCount=2",
        "-p", str(p.jar),
        "-m", "io.questdb/io.questdb.ServerMain",
        "-d", str(p.data),
    ]  # fmt: skip
    with p.log.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the shell that started it
        )
    p.pid.write_text(str(process.pid))
    if not _wait_until_ready(process.pid, timeout):
        stop()
        raise LocalQuestDBError(
            f"QuestDB did not answer SELECT 1 within {timeout:.0f} s; see {p.log}."
        )
    return status()


def _wait_until_ready(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return False
        if _port_open(settings.QUESTDB_PORT) and answers_select_1():
            return True
        time.sleep(0.2)
    return False


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise LocalQuestDBError(
            f"Cannot create {path}: {exc.strerror or exc}. Set QUESTDB_DATA_DIR to a folder "
            f"this user may write, or unset it (default: var/questdb)."
        ) from None


def _running_pg_port() -> int | None:
    """The PostgreSQL wire port in the server.conf the running server was started with."""
    try:
        conf = paths().conf.read_text()
    except OSError:
        return None
    match = re.search(r"^pg\.net\.bind\.to=.*:(\d+)$", conf, re.MULTILINE)
    return int(match.group(1)) if match else None


def ensure_local(host: str, port: int) -> None:
    """Refuse ``host:port`` unless it is the server ``start`` runs here (seed drops tables).

    An exported production QUESTDB_HOST, a server another tool started, or a
    port that is not our server's: each is refused with what to do.
    """
    current, ours = status(), _running_pg_port()
    if host not in LOOPBACK:
        why = f"QUESTDB_HOST is {host!r}, not this machine"
    elif not current.running:
        why = f"no QuestDB started by `manage.py questdb start` runs from {paths().root}"
    elif int(port) != ours:
        why = (
            f"the QuestDB that `manage.py questdb start` runs (pid {current.pid}) listens on "
            f"port {ours}, not {port}"
        )
    else:
        return
    raise LocalQuestDBError(
        f"Refusing to seed {host}:{port}: {why}. Seeding drops and recreates the tables "
        f"trading_sessions, prices and positions. Run `manage.py questdb start` for a local "
        f"server, or add --force if you really mean to replace that server's tables."
    )


def stop(timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the server and wait for it to exit. Returns whether one was running."""
    pid = _read_pid()
    if pid is None:
        paths().pid.unlink(missing_ok=True)
        return False
    for sig, wait in ((signal.SIGCONT, 0), (signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.kill(pid, sig)  # SIGCONT first: a paused server cannot shut down
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.1)
        if wait and not _pid_alive(pid):
            break
    paths().pid.unlink(missing_ok=True)
    return True
