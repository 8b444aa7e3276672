"""One breaker per name per process, built from settings; rebuilt when settings change.

Breakers of one store path and options share one store instance, so a
``CacheStore`` keeps one mirror (and one outage state) per process.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from django.core.signals import setting_changed
from django.dispatch import receiver

from .conf import breaker_config, breaker_settings, get_config

if TYPE_CHECKING:
    from .breaker import CircuitBreaker
    from .stores import BreakerStore

_lock = threading.RLock()
_breakers: dict[str, CircuitBreaker] = {}
_stores: dict[tuple[str, tuple[tuple[str, Any], ...]], BreakerStore] = {}


def _store_for(path: str, options: dict[str, Any]) -> BreakerStore:
    from .stores import load_store

    key = (path, tuple(sorted((k, repr(v)) for k, v in options.items())))
    store = _stores.get(key)
    if store is None:
        store = _stores[key] = load_store(path, options)
    return store


def default_store() -> BreakerStore:
    """The store of a breaker that ``BREAKERS`` does not configure (the settings' ``STORE``)."""
    config = get_config()
    with _lock:
        return _store_for(config["STORE"], dict(config["STORE_OPTIONS"]))


def get_breaker(name: str) -> CircuitBreaker:
    """This process's breaker ``name``, configured by ``RESILIENCE`` and ``BREAKERS[name]``."""
    breaker = _breakers.get(name)
    if breaker is not None:
        return breaker
    from .breaker import CircuitBreaker

    with _lock:
        breaker = _breakers.get(name)
        if breaker is None:
            config = breaker_config(name)
            store = _store_for(config["STORE"], dict(config["STORE_OPTIONS"]))
            breaker = _breakers[name] = CircuitBreaker(
                name, store=store, config=breaker_settings(name)
            )
            _report(breaker)
    return breaker


def _report(breaker: CircuitBreaker) -> None:
    """Count its calls for the fleet from the start; a process that serves publishes them
    (resilience/fleet/reporter.py)."""
    from . import fleet

    fleet.watch(breaker)


def all_breakers() -> list[CircuitBreaker]:
    """Every breaker this process has used, plus those named in ``RESILIENCE["BREAKERS"]``."""
    for name in get_config().get("BREAKERS") or {}:
        get_breaker(name)
    return sorted(_breakers.values(), key=lambda breaker: breaker.name)


def reset_registry() -> None:
    """Forget every breaker and store (their shared state, if any, stays where it is)."""
    from .fleet import reporter

    with _lock:
        _breakers.clear()
        _stores.clear()
    reporter().forget()


@receiver(setting_changed)
def _reset_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in {"RESILIENCE", "CACHES"}:
        from .process import forget_identity
        from .sharedcache import reset_shared_caches

        reset_registry()
        reset_shared_caches()
        forget_identity()
