"""Where a breaker's state lives: this process (``LocalStore``) or Django's cache (``CacheStore``).

The store is chosen by import string (``RESILIENCE["STORE"]``) and built with
``from_options(RESILIENCE["STORE_OPTIONS"])``, as django-axes picks handlers;
``"resilience.stores.LocalStore"`` and ``"resilience.stores.CacheStore"``
name the two here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.module_loading import import_string

from ..clock import Clock
from .base import BreakerStore, Cell
from .cache import CacheStore
from .local import LocalStore

__all__ = ["BreakerStore", "CacheStore", "Cell", "LocalStore", "load_store"]


def load_store(
    path: str, options: Mapping[str, Any], *, clock: Clock | None = None
) -> BreakerStore:
    """Build the store named by an import string (``RESILIENCE["STORE"]``)."""
    cls = import_string(path)
    if not (isinstance(cls, type) and issubclass(cls, BreakerStore)):
        raise TypeError(f"{path} is not a resilience.stores.BreakerStore subclass")
    return cls.from_options(options, clock=clock)
