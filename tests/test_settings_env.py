"""Settings and setup say no clearly (issue 10, items 10 to 12, and `check --deploy`).

- Every variable of the README's configuration table, given a bad value,
  stops startup with ImproperlyConfigured naming it (or, for the secret key,
  `check --deploy` says so); the table below must cover the README's.
- `migrate` alone sets the site up; `questdb start` and `seed` before it log
  no warnings.
- The README says what `make test` needs, and its health command works.
- `manage.py check --deploy` is clean with the README's production settings.
"""

from __future__ import annotations

import io
import json
import os
import re
import runpy
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import override_settings

from resilience import conf

from .settings import TEST_ENV

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SETTINGS = ROOT / "questdash" / "settings.py"
SHORT_TOKEN = "tiny-secret"

# (variable, bad value): each must stop startup with ImproperlyConfigured naming the variable.
BAD_VALUES = [
    ("QUESTDB_HOST", ""), ("QUESTDB_HOST", "two words"),
    ("QUESTDB_PORT", "abc"), ("QUESTDB_PORT", "99999"), ("QUESTDB_PORT", "0"),
    ("QUESTDB_PORT", "nan"), ("QUESTDB_PORT", "8812.5"),
    ("QUESTDB_USER", ""), ("QUESTDB_USER", "admin\npg.password=x"),
    ("QUESTDB_PASSWORD", ""), ("QUESTDB_PASSWORD", "quest\nhttp.bind.to=0.0.0.0:9000"),
    ("QUESTDB_DATABASE", ""),
    ("REDIS_URL", "localhost:6379"), ("REDIS_URL", "http://redis:6379/0"), ("REDIS_URL", "redis://"),
    ("CELERY_BROKER_URL", "not a url"),
    ("DJANGO_DEBUG", "maybe"), ("DJANGO_SECURE", "sure"),
    ("DJANGO_ALLOWED_HOSTS", ","), ("DJANGO_ALLOWED_HOSTS", " "),
    ("DJANGO_LOG_LEVEL", "LOUD"),
    ("RESILIENCE_FAILURE_THRESHOLD", "five"), ("RESILIENCE_FAILURE_THRESHOLD", "nan"),
    ("RESILIENCE_RECOVERY_TIMEOUT", "nan"), ("RESILIENCE_RECOVERY_TIMEOUT", "inf"),
    ("RESILIENCE_HALF_OPEN_MAX_CALLS", "1.5"),
    ("RESILIENCE_CONNECT_TIMEOUT", "nan"), ("RESILIENCE_CONNECT_TIMEOUT", "inf"),
    ("RESILIENCE_CONNECT_TIMEOUT", "-1"),
    ("RESILIENCE_QUERY_TIMEOUT", "nan"), ("RESILIENCE_QUERY_TIMEOUT", "inf"),
    ("RESILIENCE_QUERY_TIMEOUT", "1e999"), ("RESILIENCE_QUERY_TIMEOUT", "0"),
    ("DASHBOARD_REFRESH_INTERVAL", "nan"), ("DASHBOARD_REFRESH_INTERVAL", "0"),
    ("DASHBOARD_ACTIVE_SESSIONS_LIMIT", "-5"), ("DASHBOARD_ACTIVE_SESSIONS_LIMIT", "ten"),
    ("DASHBOARD_POSITIONS_LIMIT", "0"), ("DASHBOARD_CHART_MINUTES", "2.5"),
    ("DASHBOARD_FRESH_FOR", "-1"), ("DASHBOARD_FRESH_FOR", "nan"),
    ("HEALTH_QUESTDB_TIMEOUT", "-1"), ("HEALTH_QUESTDB_TIMEOUT", "inf"),
    ("HEALTH_HEARTBEAT_MAX_AGE", "0"), ("HEALTH_FRESHNESS_MAX_AGE", "nan"),
    ("HEALTH_TOKEN", SHORT_TOKEN), ("METRICS_TOKEN", SHORT_TOKEN),
    ("QUESTDB_HTTP_PORT", "65536"), ("QUESTDB_HEALTH_PORT", "-1"), ("QUESTDB_ILP_PORT", "port"),
    ("QUESTDB_HEAP", "lots"), ("QUESTDB_HEAP", "0m"),
    ("QUESTDB_BIND_HOST", "everywhere"), ("QUESTDB_BIND_HOST", "questdb.internal"),
]  # fmt: skip
# Variables whose bad values other mechanisms refuse, each tested below.
ELSEWHERE = {
    "DJANGO_SECRET_KEY": "test_a_weak_secret_key_fails_check_deploy",
    "QUESTDB_DATA_DIR": "test_an_unusable_data_dir_is_named",
}


def start_up(monkeypatch, tmp_path, name: str, value: str) -> None:
    """What every process does first: read the settings (and the app's env numbers)."""
    monkeypatch.setenv("QUESTDASH_VAR_DIR", str(tmp_path))
    monkeypatch.setenv(name, value)
    runpy.run_path(str(SETTINGS))
    conf.get_config.cache_clear()
    try:
        conf.get_config()
    finally:
        conf.get_config.cache_clear()


def test_the_table_covers_every_variable_of_the_readme():
    table = README[README.index("## Configuration") : README.index("## Health checks")]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table)) - {"RESILIENCE", "MAX_ENTRIES"}
    covered = {name for name, _ in BAD_VALUES} | set(ELSEWHERE)
    assert documented - covered == set(), "every variable of the README gets a bad value"
    assert covered - documented == set(), "and the README documents every one tested"


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_a_bad_value_stops_startup_naming_the_variable(monkeypatch, tmp_path, name, value):
    with pytest.raises(ImproperlyConfigured) as info:
        start_up(monkeypatch, tmp_path, name, value)
    message = str(info.value)
    assert name in message, message
    assert "\n" not in message.strip()
    if name.endswith(("PASSWORD", "TOKEN")):
        assert value.strip() not in message or not value.strip(), "a secret is never repeated"


def test_good_values_still_start(monkeypatch, tmp_path):
    good = [
        ("QUESTDB_PORT", "5432"), ("DJANGO_DEBUG", "off"), ("RESILIENCE_QUERY_TIMEOUT", "0.5"),
        ("DASHBOARD_FRESH_FOR", "0"), ("REDIS_URL", "rediss://:pw@redis:6380/2"),
        ("QUESTDB_BIND_HOST", "::1"), ("HEALTH_TOKEN", secrets.token_urlsafe(24)),
        ("QUESTDB_HEAP", "2g"), ("QUESTDB_PASSWORD", "pä ss wörd!"),
    ]  # fmt: skip
    for name, value in good:
        start_up(monkeypatch, tmp_path, name, value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("DASHBOARD_REFRESH_INTERVAL", float("nan")), ("HEALTH_QUESTDB_TIMEOUT", -1),
     ("QUESTDB_PORT", 99999), ("DASHBOARD_POSITIONS_LIMIT", 2.5), ("DASHBOARD_FRESH_FOR", -1)],
)  # fmt: skip
def test_the_same_rules_hold_for_settings_set_in_code(name, value):
    with override_settings(**{name: value}):
        errors = [e for e in run_checks() if e.id == "questdash.E001"]
    assert len(errors) == 1 and errors[0].msg.startswith(f"{name} is "), errors


def test_a_weak_secret_key_fails_check_deploy():
    with override_settings(SECRET_KEY="short", DEBUG=False):
        ids = {e.id for e in run_checks(include_deployment_checks=True)}
    assert "security.W009" in ids


@pytest.mark.parametrize("folder", ["file", "file/questdb"])
def test_an_unusable_data_dir_is_named(settings, tmp_path, folder):
    (tmp_path / "file").write_text("not a folder")
    settings.QUESTDB_DATA_DIR = tmp_path / folder
    with pytest.raises(CommandError, match=r"Set QUESTDB_DATA_DIR to a folder"):
        call_command("questdb", "fetch")


# --- item 11: migrate alone sets the site up ---------------------------------------------


def manage(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {**os.environ, "QUESTDASH_VAR_DIR": str(tmp_path)}
    base["DJANGO_SETTINGS_MODULE"] = "questdash.settings"
    base["DJANGO_ALLOWED_HOSTS"] = "testserver"
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **(env or {})},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if '"level": "WARNING"' in line]


def test_migrate_alone_sets_the_site_up(tmp_path):
    migrate = manage(tmp_path, "migrate", "--noinput")
    assert migrate.returncode == 0, migrate.stderr
    probe = manage(
        tmp_path, "shell", "-c",
        "from django.test import Client; r = Client().get('/ht/live/?format=json');"
        " print(r.status_code, r.content.decode())",
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    status, body = probe.stdout.strip().splitlines()[-1].split(" ", 1)
    assert status == "200", body
    assert json.loads(body)["CacheRoundTrip(alias='default')"] == "OK"
    assert warnings_in(probe.stderr) == []


@pytest.mark.usefixtures("questdb_server")
def test_questdb_start_and_seed_before_migrate_log_no_warning(tmp_path):
    env = {
        "QUESTDB_PASSWORD": TEST_ENV["QUESTDB_PASSWORD"],
        "QUESTDB_DATA_DIR": str(settings.QUESTDB_DATA_DIR),  # the tests' server, already running
    }
    for action in ("start", "seed"):
        result = manage(tmp_path, "questdb", action, env=env)
        assert result.returncode == 0, result.stderr
        assert warnings_in(result.stderr) == [], result.stderr


# --- item 12: the README's promises ---------------------------------------------------------


def test_readme_says_what_make_test_needs():
    needs = README[README.index("### What `make test` needs") : README.index("## What is where")]
    for words in ("Go", "proxy.golang.org", "GOPROXY", "root or sudo", "apt-get", "Java 17"):
        assert words in needs, words


@pytest.mark.django_db(transaction=True, databases=["default", "questdb"])
@pytest.mark.usefixtures("questdb_server", "fresh_state")
def test_readme_health_command_works_as_written():
    commands = re.findall(r"`python manage\.py (health_check[^`]*)`", README)
    assert commands, "the README shows how to run the health checks"
    from questdash.sections import LOADERS, section
    from questdash.tasks import HEARTBEAT
    from resilience.health import record_heartbeat

    for slug in LOADERS:
        section(slug).refresh()
    record_heartbeat(HEARTBEAT)
    for command in commands:
        out = io.StringIO()
        with pytest.raises(SystemExit) as exit_info:
            call_command(*shlex.split(command), stdout=out)
        assert exit_info.value.code == 0, (command, out.getvalue())
        assert "QuestDB(alias='questdb'): OK" in out.getvalue(), command


# --- Done when: check --deploy with the README's production settings ------------------------


def production_environment() -> dict[str, str]:
    block = README[README.index("Production settings") :].split("```sh", 1)[1].split("```")[0]
    env = {}
    for name, value in re.findall(r"^export (\w+)=(\S+)", block, re.MULTILINE):
        env[name] = secrets.token_urlsafe(50) if value.startswith('"$(') else value
    return env


def test_check_deploy_is_clean_with_the_readme_production_settings(tmp_path):
    env = production_environment()
    assert {"DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DJANGO_SECURE", "REDIS_URL"} <= set(env)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "QUESTDB_"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**clean, **env, "QUESTDASH_VAR_DIR": str(tmp_path),
             "DJANGO_SETTINGS_MODULE": "questdash.settings"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
