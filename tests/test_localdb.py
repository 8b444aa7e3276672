"""`manage.py questdb`'s clear errors: Java missing or too old, no jar, a port taken."""

from __future__ import annotations

import socket
import stat

import pytest
from django.core.management import CommandError, call_command

from questdash import localdb
from testkit.ports import free_port


@pytest.fixture
def empty_data_dir(settings, tmp_path):
    settings.QUESTDB_DATA_DIR = tmp_path / "questdb"
    return settings.QUESTDB_DATA_DIR


def fake_java(tmp_path, version_line: str) -> str:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return str(home)


def test_start_without_the_jar_says_to_fetch(empty_data_dir):
    with pytest.raises(
        CommandError, match=r"questdb-.*\.jar is missing: run `python manage.py questdb fetch`"
    ):
        call_command("questdb", "start")


def test_java_too_old_is_named_with_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", fake_java(tmp_path, 'java version "1.8.0_392"'))
    with pytest.raises(localdb.LocalQuestDBError, match=r"is Java 8; QuestDB .* needs Java 17"):
        localdb.find_java()


def test_java_missing_is_named_with_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(localdb.LocalQuestDBError, match=r"Java not found\. Install Java 17"):
        localdb.find_java()


def test_a_taken_port_is_named(empty_data_dir, settings):
    empty_data_dir.mkdir(parents=True)
    localdb.paths().jar.touch()  # start checks the port before it runs the jar
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings.QUESTDB_PORT = taken.getsockname()[1]
        settings.QUESTDB_HTTP_PORT = free_port()
        with pytest.raises(
            localdb.LocalQuestDBError,
            match=rf"Port {settings.QUESTDB_PORT} \(pg\) is already taken",
        ):
            localdb.start()


def test_stop_and_status_when_nothing_runs(empty_data_dir, capsys):
    call_command("questdb", "stop")
    call_command("questdb", "status")
    out = capsys.readouterr().out
    assert "QuestDB was not running." in out
    assert "QuestDB is not running" in out
