"""The app's settings: defaults in one place, one cached accessor.

Precedence, lowest first: ``DEFAULTS``, then the ``RESILIENCE_*`` environment
variables of the public contract, then the ``RESILIENCE`` dict in Django
settings (explicit code wins; a settings module that wants the environment to
rule simply leaves those keys out). Per-breaker overrides live under
``RESILIENCE["BREAKERS"][name]`` and are merged by ``breaker_config(name)``.

The merged result is cached and cleared on Django's ``setting_changed`` signal,
as django-debug-toolbar does, so ``override_settings`` works in tests.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

SETTING_NAME = "RESILIENCE"

DEFAULTS: dict[str, Any] = {
    # State machine (the story's configuration is the default).
    "FAILURE_THRESHOLD": 5,  # consecutive failures that open the breaker
    "RECOVERY_TIMEOUT": 30.0,  # seconds open before a probe is let through
    "HALF_OPEN_MAX_CALLS": 1,  # probes per recovery window, across all processes
    # Optional failure-rate rule over the last SLIDING_WINDOW_SIZE calls of this
    # process (as Resilience4j's count-based window); None disables it.
    "FAILURE_RATE_THRESHOLD": None,  # percent, 0 < x <= 100
    "SLIDING_WINDOW_SIZE": 20,
    "MINIMUM_CALLS": 10,
    # Open-duration backoff after repeated failed probes: 30, 60, 120 ... capped.
    "OPEN_BACKOFF_MULTIPLIER": 1.0,  # 1.0 means no backoff
    "MAX_RECOVERY_TIMEOUT": 300.0,
    # Exceptions that count (besides connection errors) or never count, as
    # import strings.
    "RECORD_EXCEPTIONS": (),
    "IGNORE_EXCEPTIONS": (),
    # Where state lives.
    "STORE": "resilience.stores.LocalStore",
    "STORE_OPTIONS": {"CACHE_ALIAS": "default", "SYNC_INTERVAL": 0.5},
    # Retry and deadline.
    "RETRY_ATTEMPTS": 3,  # attempts in total, the first included
    "RETRY_WAITS": (0.1, 0.5, 1.0),  # wait before attempt 2, 3, 4 ... (last repeats)
    "RETRY_JITTER": 0.0,  # up to this many seconds added at random to each wait
    "CALL_DEADLINE": 10.0,  # budget of one guarded call, waits and timeouts included
    "CONNECT_TIMEOUT": 3.0,
    "QUERY_TIMEOUT": 5.0,
    # Observability.
    "HISTORY_SIZE": 20,  # recent transitions kept for the admin page
    "BREAKERS": {},  # per-breaker overrides: {"questdb": {"FAILURE_THRESHOLD": 3}}
}

# The public contract's environment variables and how to read each.
ENVIRONMENT: dict[str, tuple[str, type]] = {
    "FAILURE_THRESHOLD": ("RESILIENCE_FAILURE_THRESHOLD", int),
    "RECOVERY_TIMEOUT": ("RESILIENCE_RECOVERY_TIMEOUT", float),
    "HALF_OPEN_MAX_CALLS": ("RESILIENCE_HALF_OPEN_MAX_CALLS", int),
    "CONNECT_TIMEOUT": ("RESILIENCE_CONNECT_TIMEOUT", float),
    "QUERY_TIMEOUT": ("RESILIENCE_QUERY_TIMEOUT", float),
}

# Keys a per-breaker override may set: everything that shapes one breaker.
BREAKER_KEYS = frozenset(DEFAULTS) - {"BREAKERS"}


def _from_environment() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, (variable, kind) in ENVIRONMENT.items():
        raw = os.environ.get(variable)
        if raw is None or not raw.strip():
            continue
        try:
            value = kind(raw.strip())
        except ValueError:
            value = math.nan  # refused below, with the same message
        if not math.isfinite(value):  # NaN and inf pass float() but no comparison
            raise ImproperlyConfigured(
                f"{variable}={raw!r} is not a valid {kind.__name__}; "
                f"set it to a finite number such as {DEFAULTS[key]!r} or unset it."
            )
        values[key] = value
    return values


def _freeze(config: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(config)


@functools.cache
def get_config() -> Mapping[str, Any]:
    """The merged, read-only configuration (cached until settings change)."""
    from django.conf import settings

    user = getattr(settings, SETTING_NAME, None) or {}
    if not isinstance(user, Mapping):
        raise ImproperlyConfigured(
            f"settings.{SETTING_NAME} must be a dict, not {type(user).__name__}."
        )
    merged = {**DEFAULTS, **_from_environment(), **user}
    options = dict(DEFAULTS["STORE_OPTIONS"])
    options.update(user.get("STORE_OPTIONS") or {})
    merged["STORE_OPTIONS"] = options
    return _freeze(merged)


def breaker_config(name: str) -> Mapping[str, Any]:
    """The configuration of one breaker: the global one plus BREAKERS[name]."""
    config = get_config()
    overrides = (config.get("BREAKERS") or {}).get(name) or {}
    if not overrides:
        return config
    merged = {**config, **overrides}
    if "STORE_OPTIONS" in overrides:
        merged["STORE_OPTIONS"] = {**config["STORE_OPTIONS"], **overrides["STORE_OPTIONS"]}
    return _freeze(merged)


@receiver(setting_changed)
def _clear_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        get_config.cache_clear()
