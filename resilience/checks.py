"""System checks for ``settings.RESILIENCE``: what is wrong, and how to fix it.

Run by ``manage.py check`` (and before ``runserver``/``migrate``), so a bad
threshold or a mistyped store path fails at deploy time, not at the first
QuestDB outage.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .conf import BREAKER_KEYS, DEFAULTS, ENVIRONMENT, SETTING_NAME, get_config

Problem = tuple[str, str, str]  # (id, message, hint)


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _where(scope: str, key: str) -> str:
    return f"{scope}[{key!r}]"


def _env_hint(key: str) -> str:
    if key in ENVIRONMENT:
        return f" (or the {ENVIRONMENT[key][0]} environment variable)"
    return ""


# (key, id, test, what it must be)
_RULES: list[tuple[str, str, Callable[[Any], bool], str]] = [
    ("FAILURE_THRESHOLD", "E001", lambda v: _integer(v) and v >= 1, "a whole number of at least 1"),
    ("RECOVERY_TIMEOUT", "E002", lambda v: _number(v) and v > 0, "a positive number of seconds"),
    ("HALF_OPEN_MAX_CALLS", "E003", lambda v: _integer(v) and v >= 1, "a whole number >= 1"),
    ("CONNECT_TIMEOUT", "E004", lambda v: _number(v) and v > 0, "a positive number of seconds"),
    ("QUERY_TIMEOUT", "E004", lambda v: _number(v) and v > 0, "a positive number of seconds"),
    ("CALL_DEADLINE", "E004", lambda v: _number(v) and v > 0, "a positive number of seconds"),
    ("RETRY_ATTEMPTS", "E006", lambda v: _integer(v) and v >= 1, "a whole number >= 1"),
    (
        "RETRY_WAITS",
        "E006",
        lambda v: isinstance(v, list | tuple) and bool(v) and all(_number(w) and w >= 0 for w in v),
        "a non-empty list of seconds >= 0, such as (0.1, 0.5, 1.0)",
    ),
    ("RETRY_JITTER", "E006", lambda v: _number(v) and v >= 0, "a number of seconds >= 0"),
    (
        "FAILURE_RATE_THRESHOLD",
        "E007",
        lambda v: v is None or (_number(v) and 0 < v <= 100),
        "None (off) or a percentage in (0, 100]",
    ),
    ("SLIDING_WINDOW_SIZE", "E007", lambda v: _integer(v) and v >= 1, "a whole number >= 1"),
    ("MINIMUM_CALLS", "E007", lambda v: _integer(v) and v >= 1, "a whole number >= 1"),
    ("OPEN_BACKOFF_MULTIPLIER", "E008", lambda v: _number(v) and v >= 1, "a number >= 1 (1: off)"),
    ("MAX_RECOVERY_TIMEOUT", "E008", lambda v: _number(v) and v > 0, "a positive number"),
    ("HISTORY_SIZE", "E013", lambda v: _integer(v) and v >= 1, "a whole number >= 1"),
]


def _value_problems(config: Mapping[str, Any], scope: str) -> list[Problem]:
    problems: list[Problem] = []
    for key, check_id, test, must_be in _RULES:
        value = config.get(key)
        if not test(value):
            problems.append(
                (
                    check_id,
                    f"{_where(scope, key)} is {value!r}; it must be {must_be}.",
                    f"Set {_where(scope, key)}{_env_hint(key)} to {must_be}; "
                    f"the default is {DEFAULTS[key]!r}.",
                )
            )
    window, minimum = config.get("SLIDING_WINDOW_SIZE"), config.get("MINIMUM_CALLS")
    if _integer(window) and _integer(minimum) and minimum > window:
        problems.append(
            (
                "E007",
                f"{_where(scope, 'MINIMUM_CALLS')} ({minimum}) is larger than "
                f"SLIDING_WINDOW_SIZE ({window}), so the failure-rate rule can never fire.",
                "Make MINIMUM_CALLS at most SLIDING_WINDOW_SIZE.",
            )
        )
    longest, recovery = config.get("MAX_RECOVERY_TIMEOUT"), config.get("RECOVERY_TIMEOUT")
    if _number(longest) and _number(recovery) and longest < recovery:
        problems.append(
            (
                "E008",
                f"{_where(scope, 'MAX_RECOVERY_TIMEOUT')} ({longest}) is shorter than "
                f"RECOVERY_TIMEOUT ({recovery}).",
                "Raise MAX_RECOVERY_TIMEOUT to at least RECOVERY_TIMEOUT.",
            )
        )
    return problems


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
    for key in ("RECORD_EXCEPTIONS", "IGNORE_EXCEPTIONS"):
        problems += _exception_problems(config.get(key), _where(scope, key))
    return problems


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
    interval = options.get("SYNC_INTERVAL", 0.5)
    if not (_number(interval) and interval > 0):
        problems.append(
            (
                "E010",
                f"{where}['SYNC_INTERVAL'] is {interval!r}; it must be a positive number.",
                "Use 0.5 to 1 seconds: how stale a process's view of the shared state may get.",
            )
        )
    backend = str(caches[alias].get("BACKEND", ""))
    if backend.endswith(("DummyCache", "LocMemCache")):
        problems.append(
            (
                "W002",
                f"{where} shares breaker state through cache {alias!r} ({backend}), "
                "which other processes cannot see.",
                "Use Redis (django.core.cache.backends.redis.RedisCache), Memcached or the "
                "database cache for CacheStore, or LocalStore for a single process.",
            )
        )
    if backend.endswith("FileBasedCache"):
        problems.append(
            (
                "W003",
                f"{where} shares breaker state through cache {alias!r} ({backend}), whose add() "
                "is not atomic across processes: two processes may probe in one window.",
                "Use Redis, Memcached or the database cache when processes share a breaker.",
            )
        )
    return problems


_EXCEPTION_HINT = "List dotted paths of exception classes, such as 'psycopg.errors.QueryCanceled'."


def _exception_problems(paths: Any, where: str) -> list[Problem]:
    if not isinstance(paths, list | tuple):
        message = f"{where} is {paths!r}; it must be a list of import strings."
        return [("E009", message, _EXCEPTION_HINT)]
    problems: list[Problem] = []
    for path in paths:
        try:
            kind = import_string(path)
        except (ImportError, TypeError, ValueError) as exc:
            message = f"{where} lists {path!r}, which cannot be imported ({exc})."
            problems.append(("E009", message, _EXCEPTION_HINT))
            continue
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            message = f"{where} lists {path!r}, which is not an exception class."
            problems.append(("E009", message, _EXCEPTION_HINT))
    return problems


def _unknown_keys(keys: Iterable[str], known: Iterable[str], scope: str) -> list[Problem]:
    known = sorted(known)
    problems: list[Problem] = []
    for key in keys:
        if key in known:
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
        if {"STORE", "STORE_OPTIONS", "RECORD_EXCEPTIONS", "IGNORE_EXCEPTIONS"} & set(overrides):
            problems += _import_problems(merged, where)
    return problems


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
    for check_id, message, hint in problems_in(config, user):
        level = checks.Warning if check_id.startswith("W") else checks.Error
        messages.append(level(message, hint=hint or None, id=f"resilience.{check_id}"))
    return messages
