"""System checks for ``settings.RESILIENCE``: what is wrong, and how to fix it.

Run by ``manage.py check`` (and before ``runserver``/``migrate``), so a bad
threshold or a mistyped store path fails at deploy time, not at the first
QuestDB outage.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .conf import (
    BREAKER_KEYS,
    DEFAULTS,
    RENAMED,
    SETTING_NAME,
    Problem,
    get_config,
    number,
    value_problems,
)
from .conf import where as _where


def _value_problems(config: Mapping[str, Any], scope: str) -> list[Problem]:
    return value_problems(config, scope)


def _import_problems(config: Mapping[str, Any], scope: str) -> list[Problem]:
    from .stores import BreakerStore, CacheStore

    problems: list[Problem] = []
    path = config.get("STORE")
    try:
        store = import_string(path)
    except (ImportError, TypeError, ValueError) as exc:
        problems.append(
            (
                "E005",
                f"{_where(scope, 'STORE')} is {path!r}, which cannot be imported ({exc}).",
                "Use 'resilience.stores.LocalStore' (one process) or "
                "'resilience.stores.CacheStore' (shared through Django's cache), "
                "or the dotted path of your own BreakerStore subclass.",
            )
        )
        store = None
    if store is not None and not (isinstance(store, type) and issubclass(store, BreakerStore)):
        problems.append(
            (
                "E005",
                f"{_where(scope, 'STORE')} is {path!r}, which is not a BreakerStore subclass.",
                "Point it at resilience.stores.LocalStore, resilience.stores.CacheStore "
                "or a subclass of resilience.stores.BreakerStore.",
            )
        )
    if isinstance(store, type) and issubclass(store, CacheStore):
        problems += _cache_problems(config.get("STORE_OPTIONS") or {}, scope)
    return problems


_SHARED_CACHES = (
    "Redis (django.core.cache.backends.redis.RedisCache), Memcached or the database cache "
    "(django.core.cache.backends.db.DatabaseCache)"
)


def _cache_problems(options: Mapping[str, Any], scope: str) -> list[Problem]:
    from django.conf import settings

    alias = options.get("CACHE_ALIAS", "default")
    where = _where(scope, "STORE_OPTIONS")
    caches = getattr(settings, "CACHES", {})
    if alias not in caches:
        return [
            (
                "E010",
                f"{where} names cache {alias!r}, which is not in settings.CACHES "
                f"(there: {', '.join(sorted(caches)) or 'none'}).",
                "Add that alias to CACHES or set CACHE_ALIAS to one that exists.",
            )
        ]
    problems: list[Problem] = []
    # SUCCESS_INTERVAL may be 0: every success told at once (the strict "consecutive").
    for key, default, meaning, least in (
        ("SYNC_INTERVAL", 0.5, "how stale a process's view of the shared state may get", None),
        ("SUCCESS_INTERVAL", 0.1, "how stale a success may be when the fleet counts failures", 0),
        ("OUTAGE_RETRY_INTERVAL", 1.0, "how often a cache that went away is tried again", None),
        ("OPERATION_TIMEOUT", 0.5, "how long one cache operation may hold up a request", None),
    ):
        value = options.get(key, default)
        if not (number(value) and (value > 0 or value == least)):
            kind = "a positive number" if least is None else "0 or a positive number"
            problems.append(
                (
                    "E010",
                    f"{where}[{key!r}] is {value!r}; it must be {kind} of seconds.",
                    f"It sets {meaning}; the default is {default}.",
                )
            )
    backend = str(caches[alias].get("BACKEND", ""))
    if backend.endswith(("DummyCache", "FileBasedCache")):
        why = (
            "stores nothing"
            if backend.endswith("DummyCache")
            else "neither adds nor counts atomically across processes (two processes could "
            "probe in one window, and failures would be lost)"
        )
        problems.append(
            (
                "E014",
                f"{where} shares breaker state through cache {alias!r} ({backend}), which {why}.",
                f"Use {_SHARED_CACHES} for CacheStore, or LocalStore for a single process.",
            )
        )
    if backend.endswith("LocMemCache"):
        problems.append(
            (
                "W002",
                f"{where} shares breaker state through cache {alias!r} ({backend}), "
                "which other processes cannot see.",
                f"Use {_SHARED_CACHES} for CacheStore, or LocalStore for a single process.",
            )
        )
    return problems


def _unknown_keys(keys: Iterable[str], known: Iterable[str], scope: str) -> list[Problem]:
    known = sorted(known)
    problems: list[Problem] = []
    for key in keys:
        if key in known:
            continue
        if key in RENAMED:
            message = f"{_where(scope, key)} is no longer a setting of resilience."
            problems.append(("E018", message, f"Use {RENAMED[key]} instead."))
            continue
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"Did you mean {close[0]!r}?" if close else f"Known keys: {', '.join(known)}."
        problems.append(("W001", f"{_where(scope, key)} is not a setting of resilience.", hint))
    return problems


def problems_in(config: Mapping[str, Any], user: Mapping[str, Any]) -> list[Problem]:
    """Every problem in a merged config; ``user`` is what settings gave (for typo checks)."""
    scope = f"settings.{SETTING_NAME}"
    problems = _unknown_keys(user, DEFAULTS, scope)
    problems += _value_problems(config, scope) + _import_problems(config, scope)
    breakers = config.get("BREAKERS") or {}
    if not isinstance(breakers, Mapping):
        return [
            *problems,
            (
                "E011",
                f"{_where(scope, 'BREAKERS')} must be a dict of breaker name to settings.",
                "",
            ),
        ]
    for name, overrides in breakers.items():
        where = f"{_where(scope, 'BREAKERS')}[{name!r}]"
        if not isinstance(overrides, Mapping):
            problems.append(
                (
                    "E011",
                    f"{where} must be a dict of settings.",
                    "For example {'FAILURE_THRESHOLD': 3}.",
                )
            )
            continue
        merged = {**config, **overrides}
        problems += _unknown_keys(overrides, BREAKER_KEYS, where)
        problems += _value_problems(merged, where)
        if {"STORE", "STORE_OPTIONS"} & set(overrides):
            problems += _import_problems(merged, where)
    return problems


def database_problems(
    config: Mapping[str, Any], databases: Mapping[str, Any] | None = None
) -> list[Problem]:
    """READ_REPLICAS and PRIMARY_DATABASE name aliases of DATABASES; each replica is guarded
    (or its breaker never sees a failure, and reads never move)."""
    from django.conf import settings

    replicas, primary = config.get("READ_REPLICAS"), config.get("PRIMARY_DATABASE")
    if not isinstance(replicas, list | tuple) or not isinstance(primary, str) or not replicas:
        return []  # nothing to route, or a value problem reported already
    scope = f"settings.{SETTING_NAME}"
    if databases is None:
        databases = getattr(settings, "DATABASES", {}) or {}
    problems: list[Problem] = []
    for key, alias in [("PRIMARY_DATABASE", primary), *(("READ_REPLICAS", a) for a in replicas)]:
        if alias not in databases:
            problems.append(("E018", f"{_where(scope, key)} names {alias!r}, which is not in "
                             "settings.DATABASES.", f"Add DATABASES[{alias!r}] or remove it "
                             f"from {_where(scope, key)}."))  # fmt: skip
        elif key == "READ_REPLICAS" and not _guarded_engine(databases[alias].get("ENGINE", "")):
            problems.append(("E018", f"DATABASES[{alias!r}] is a read replica but its ENGINE is "
                             "not guarded: its breaker would never see a failure.",
                             "Set its ENGINE to 'resilience.db.backends.postgresql'."))  # fmt: skip
    return problems


def _guarded_engine(engine: str) -> bool:
    from django.db.utils import load_backend

    from .db.guard import GuardedDatabaseMixin

    try:
        wrapper = load_backend(engine).DatabaseWrapper
    except Exception:  # noqa: BLE001 - Django's own check reports an engine that does not load
        return False
    return issubclass(wrapper, GuardedDatabaseMixin)


@checks.register("resilience")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Django system check: validate ``settings.RESILIENCE`` and the environment."""
    from django.conf import settings

    try:
        config = get_config()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="resilience.E000")]
    user = getattr(settings, SETTING_NAME, None) or {}
    messages: list[checks.CheckMessage] = []
    for check_id, message, hint in problems_in(config, user) + database_problems(config):
        level = checks.Warning if check_id.startswith("W") else checks.Error
        messages.append(level(message, hint=hint or None, id=f"resilience.{check_id}"))
    return messages


def _parts_in_use(settings: Any) -> dict[str, str]:
    """Extra name -> the setting that uses it, read from what the settings name."""
    used: dict[str, str] = {}
    for setting in ("INSTALLED_APPS", "MIDDLEWARE"):
        for path in getattr(settings, setting, None) or ():
            path = str(path)
            if path.startswith(("resilience.health", "health_check")):
                used.setdefault("health", f"settings.{setting} lists {path!r}")
            elif path.startswith("resilience.metrics"):
                used.setdefault("metrics", f"settings.{setting} lists {path!r}")
    for alias, cache in (getattr(settings, "CACHES", None) or {}).items():
        backend = str(cache.get("BACKEND", ""))
        if "redis" in backend.lower():
            used.setdefault("redis", f"settings.CACHES[{alias!r}] is {backend}")
    celery = sorted(name for name in dir(settings) if name.startswith("CELERY_"))
    if celery:
        used.setdefault("celery", f"settings.{celery[0]} is set (a Celery project)")
    return used


@checks.register("resilience")
def check_optional_parts(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A part the settings use whose library is missing: name the extra that installs it."""
    from django.conf import settings

    from .optional import EXTRAS

    messages: list[checks.CheckMessage] = []
    for name, why in _parts_in_use(settings).items():
        extra = EXTRAS[name]
        if not extra.installed:
            messages.append(
                checks.Error(
                    f"{why}, which needs {extra.package} ({extra.used_for}); it is not installed.",
                    hint=f"Install it with the extra: {extra.install}",
                    id="resilience.E020",
                )
            )
    return messages
