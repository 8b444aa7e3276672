"""The optional parts: without its library, a part says which extra installs it, at import and
in ``manage.py check``. Each case is a fresh interpreter in which the library cannot be
imported (a ``sitecustomize`` puts None in ``sys.modules`` for it, as if never installed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SETTINGS = """
SECRET_KEY = "optional-parts"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "resilience"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}}
CACHES = {caches}
USE_TZ = True
{extra}
"""

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/0",
    }
}


def run(tmp_path: Path, code: str, *, missing: str, caches=LOCMEM, extra: str = ""):
    (tmp_path / "optional_settings.py").write_text(SETTINGS.format(caches=caches, extra=extra))
    (tmp_path / "sitecustomize.py").write_text(
        f"import sys\nsys.modules[{missing!r}] = None  # not installed\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "optional_settings",
    }
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)  # fmt: skip


CHECK = "import django; django.setup(); from django.core.management import call_command; " \
        "call_command('check')"  # fmt: skip


@pytest.mark.parametrize(
    ("part", "missing", "extra"),
    [("resilience.metrics", "prometheus_client", "metrics"),
     ("resilience.health", "health_check", "health")],
)  # fmt: skip
def test_importing_a_part_without_its_library_names_the_extra(tmp_path, part, missing, extra):
    done = run(tmp_path, f"import django; django.setup(); import {part}", missing=missing)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("resilience.optional.MissingExtra: "), done.stderr[-800:]
    assert f"pip install 'django-resilience[{extra}]'" in last
    assert part in last


def test_the_check_names_the_extra_for_a_redis_cache(tmp_path):
    done = run(tmp_path, CHECK, missing="redis", caches=REDIS)
    assert done.returncode != 0
    assert "resilience.E020" in done.stderr, done.stderr[-800:]
    assert "settings.CACHES['default'] is django.core.cache.backends.redis.RedisCache" in (
        done.stderr
    )
    assert "pip install 'django-resilience[redis]'" in done.stderr


def test_the_check_names_the_extra_for_a_celery_project(tmp_path):
    done = run(tmp_path, CHECK, missing="celery", extra='CELERY_BROKER_URL = "redis://x"')
    assert "resilience.E020" in done.stderr, done.stderr[-800:]
    assert "pip install 'django-resilience[celery]'" in done.stderr


def test_with_every_library_the_check_is_quiet(tmp_path):
    done = run(tmp_path, CHECK, missing="not_a_module", caches=REDIS,
               extra='CELERY_BROKER_URL = "redis://x"')  # fmt: skip
    assert done.returncode == 0, done.stderr[-800:]
    assert "E020" not in done.stdout + done.stderr
