"""The local QuestDB and the demo files are safe (issue 10, items 6 to 9).

- `questdb seed` drops tables only on the server `questdb start` runs here;
  the tests always use their own server.
- The local server listens on loopback unless QUESTDB_BIND_HOST says otherwise.
- Files with secrets are private (0600) from their first byte, and processes
  starting together agree on one secret key.
- The jar must match the SHA-256 pinned in the code, whatever the server says.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from questdash import localdb
from questdash import settings as project_settings
from testkit.ports import free_port

from .test_localdb import fake_java

ROOT = Path(__file__).resolve().parent.parent


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextlib.contextmanager
def alias_at(host: str, port: int):
    """The "questdb" alias of this process pointed at host:port for a while."""
    alias = connections.settings["questdb"]
    original = alias["HOST"], alias["PORT"]
    connections["questdb"].close()
    alias["HOST"], alias["PORT"] = host, port
    try:
        yield
    finally:
        connections["questdb"].close()
        alias["HOST"], alias["PORT"] = original


def first_price_time():
    with connections["questdb"].cursor() as cursor:
        cursor.execute("SELECT min(ts) FROM prices")
        return cursor.fetchone()[0]


def mark_prices() -> None:
    """A row no seed writes: it survives a refused seed and is gone after a real one."""
    with connections["questdb"].cursor() as cursor:
        cursor.execute("INSERT INTO prices (symbol, price, ts) VALUES ('MARK', 1.0, now())")


def marked() -> bool:
    for _ in range(50):  # rows written over PG-wire become visible asynchronously
        with connections["questdb"].cursor() as cursor:
            cursor.execute("SELECT count() FROM prices WHERE symbol = 'MARK'")
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.1)
    return False


# --- item 6: seed refuses a server that `questdb start` did not start ---------------------------


@pytest.mark.django_db(databases=["default", "questdb"])
@pytest.mark.usefixtures("questdb_server")
def test_seed_refuses_another_host_without_touching_it():
    refused = pytest.raises(CommandError, match=r"Refusing to seed questdb\.prod\.example\.com")
    with alias_at("questdb.prod.example.com", 8812), refused:
        call_command("questdb", "seed")


@pytest.mark.django_db(databases=["default", "questdb"])
def test_seed_refuses_a_server_it_did_not_start_unless_forced(questdb_proxy):
    """Through a proxy the test server is, to seed, a server someone else runs."""
    mark_prices()
    with alias_at("127.0.0.1", questdb_proxy.port):
        with pytest.raises(CommandError, match=rf"listens on port \d+, not {questdb_proxy.port}"):
            call_command("questdb", "seed")
        assert marked()  # nothing dropped
        call_command("questdb", "seed", "--force")
        with connections["questdb"].cursor() as cursor:
            cursor.execute("SELECT count() FROM prices WHERE symbol = 'MARK'")
            assert cursor.fetchone()[0] == 0  # forced: the tables were replaced


@pytest.mark.django_db(databases=["default", "questdb"])
@pytest.mark.usefixtures("questdb_server")
def test_seed_refuses_when_no_local_server_runs(settings, tmp_path):
    settings.QUESTDB_DATA_DIR = tmp_path / "questdb"  # no pid file: `questdb start` never ran
    before = first_price_time()
    with pytest.raises(CommandError, match=r"no QuestDB started by `manage\.py questdb start`"):
        call_command("questdb", "seed")
    assert first_price_time() == before


def test_the_tests_always_use_their_own_server():
    env = {**os.environ, "QUESTDB_HOST": "questdb.prod.example.com", "QUESTDB_DATA_DIR": "/srv/x"}
    code = "import tests.settings as s; print(s.QUESTDB_HOST, s.QUESTDB_DATA_DIR)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["127.0.0.1", str(ROOT / "var" / "test-questdb")]


# --- item 7: loopback only -----------------------------------------------------------------------


def test_local_server_binds_loopback_whatever_questdb_host_says(settings):
    settings.QUESTDB_HOST = "questdb.internal"
    conf = localdb.server_conf()
    for key in ("http.bind.to", "http.min.net.bind.to", "pg.net.bind.to", "line.tcp.net.bind.to"):
        assert f"{key}=127.0.0.1:" in conf, key
    assert "0.0.0.0" not in conf


@pytest.mark.parametrize(("address", "bound"), [("0.0.0.0", "0.0.0.0:"), ("::1", "[::1]:")])
def test_binding_elsewhere_takes_an_explicit_setting(settings, address, bound):
    settings.QUESTDB_BIND_HOST = address
    assert f"pg.net.bind.to={bound}{settings.QUESTDB_PORT}" in localdb.server_conf()


@pytest.mark.usefixtures("questdb_server")
def test_the_running_server_listens_on_loopback_only(settings):
    listening = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A":  # LISTEN
            address, port = local.split(":")
            listening.setdefault(int(port, 16), set()).add(address)
    for port in localdb.ports().values():
        assert listening.get(port) == {"0100007F"}, (port, listening.get(port))  # 127.0.0.1


# --- item 8: private files, one key ------------------------------------------------------------


@pytest.fixture
def no_chmod(monkeypatch):
    """chmod does nothing: a file is private only if it was created so."""
    monkeypatch.setattr(Path, "chmod", lambda self, mode: None)
    monkeypatch.setattr(os, "chmod", lambda *args, **kwargs: None)
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_secret_key_is_private_from_the_first_byte_and_one_for_all(monkeypatch, tmp_path, no_chmod):
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    monkeypatch.setattr(project_settings, "VAR_DIR", tmp_path)
    made = []

    def slow_key() -> str:  # processes starting together all find no key, and make one
        made.append(1)
        number = len(made)
        time.sleep(0.1 * number)
        return f"key-{number}-" + "x" * 50

    monkeypatch.setattr(project_settings, "get_random_secret_key", slow_key)
    keys: list[str] = []
    threads = [
        threading.Thread(target=lambda: keys.append(project_settings._secret_key()))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) > 1, "the race really happened"
    assert len(set(keys)) == 1, keys
    assert mode(tmp_path / "secret_key") == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no staging file left


@pytest.fixture
def java_17(tmp_path, monkeypatch):
    """A "java" that says it is 17 and exits at once (made before chmod stops working)."""
    monkeypatch.setenv("JAVA_HOME", fake_java(tmp_path, 'openjdk version "17.0.9" 2023-10-17'))


def test_server_conf_is_private_from_the_first_byte(settings, tmp_path, java_17, no_chmod):
    settings.QUESTDB_DATA_DIR = tmp_path / "questdb"
    settings.QUESTDB_PORT, settings.QUESTDB_HTTP_PORT = free_port(), free_port()
    settings.QUESTDB_HEALTH_PORT, settings.QUESTDB_ILP_PORT = free_port(), free_port()
    localdb.paths().jar.parent.mkdir(parents=True)
    localdb.paths().jar.touch()
    with pytest.raises(localdb.LocalQuestDBError, match="did not answer"):
        localdb.start(timeout=5)  # the fake java exits at once, after the conf was written
    conf = localdb.paths().conf
    assert settings.QUESTDB_PASSWORD in conf.read_text()
    assert mode(conf) == 0o600


def test_the_sqlite_database_is_private_from_the_first_byte(tmp_path):
    env = {**os.environ, "QUESTDASH_VAR_DIR": str(tmp_path)}
    env["DJANGO_SETTINGS_MODULE"] = "questdash.settings"
    code = "import django; django.setup(); from django.db import connection as c; c.connect()"
    subprocess.run(
        [sys.executable, "-c", f"import os; os.umask(0o022); {code}"],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip
    database = tmp_path / "db.sqlite3"
    assert mode(database) == 0o600
    with contextlib.closing(sqlite3.connect(database)) as db:  # its WAL files take its mode
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (x)")
        db.commit()
        for suffix in ("-wal", "-shm"):
            assert mode(database.with_name(database.name + suffix)) == 0o600, suffix


# --- item 9: the jar matches its pinned SHA-256 ---------------------------------------------


@pytest.fixture
def fake_maven(tmp_path, monkeypatch):
    """A Maven repository over HTTP that serves a tampered jar with a matching .sha1."""
    version = localdb.QUESTDB_VERSION
    folder = tmp_path / "maven" / "org" / "questdb" / "questdb" / version
    folder.mkdir(parents=True)
    tampered = b"PK\x03\x04 not QuestDB at all"
    (folder / f"questdb-{version}.jar").write_bytes(tampered)
    (folder / f"questdb-{version}.jar.sha1").write_text(hashlib.sha1(tampered).hexdigest())
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "maven")
    )
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(
        localdb, "MAVEN_CENTRAL", f"http://127.0.0.1:{server.server_port}/org/questdb/questdb"
    )
    yield tampered
    server.shutdown()


def test_fetch_refuses_a_jar_that_is_not_the_pinned_one(settings, tmp_path, fake_maven):
    settings.QUESTDB_DATA_DIR = tmp_path / "questdb"
    with pytest.raises(CommandError, match=r"Checksum mismatch .*SHA-256 [0-9a-f]{64}, pinned"):
        call_command("questdb", "fetch")
    assert not localdb.paths().jar.exists()
    assert not list(localdb.paths().root.glob("*.part"))


def test_a_tampered_jar_in_place_is_refused(settings, tmp_path):
    settings.QUESTDB_DATA_DIR = tmp_path / "questdb"
    localdb.paths().jar.parent.mkdir(parents=True)
    localdb.paths().jar.write_bytes(b"PK\x03\x04 tampered")
    with pytest.raises(CommandError, match="Checksum mismatch"):
        call_command("questdb", "fetch")


@pytest.mark.usefixtures("questdb_server")
def test_the_real_jar_matches_its_pin():
    assert len(localdb.JAR_SHA256[localdb.QUESTDB_VERSION]) == 64
    assert localdb.verify_jar(localdb.paths().jar) == localdb.paths().jar
