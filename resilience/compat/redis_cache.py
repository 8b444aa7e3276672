"""A redis-py client seen as the part of Django's cache API that ``CacheStore`` uses.

pybreaker's users hand their storage a ``redis.Redis`` client, not a Django
cache alias. Values are pickled, as Django's Redis cache does; ``reference_time``
is Redis's ``TIME``, so every process reads the same clock (see clock.Timebase).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

FOREVER = None


class RedisClientCache:
    """``get``, ``get_many``, ``set``, ``add``, ``delete``, ``touch``, ``incr`` on one client.

    Only the calls ``CacheStore`` makes: positional timeouts, no versions.
    """

    atomic_incr = True  # INCRBY is atomic

    def __init__(self, client: Any) -> None:
        self.client = client

    @staticmethod
    def _ttl(timeout: Any) -> int | None:
        if timeout is DEFAULT_TIMEOUT:
            return 300
        return None if timeout is FOREVER else max(1, int(timeout))

    @staticmethod
    def _dumps(value: Any) -> Any:
        # Integers stay integers, so that INCRBY works on them (as Django's Redis cache does).
        whole = isinstance(value, int) and not isinstance(value, bool)
        return value if whole else pickle.dumps(value)

    @staticmethod
    def _loads(raw: Any) -> Any:
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            return pickle.loads(raw)  # our own values, as Django's Redis cache pickles them

    def get(self, key: str, default: Any = None) -> Any:
        value = self._loads(self.client.get(key))
        return default if value is None else value

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(keys)
        values = self.client.mget(keys) if keys else []
        found = zip(keys, values, strict=True)
        return {key: self._loads(raw) for key, raw in found if raw is not None}

    def set(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT) -> None:
        self.client.set(key, self._dumps(value), ex=self._ttl(timeout))

    def add(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT) -> bool:
        return bool(self.client.set(key, self._dumps(value), ex=self._ttl(timeout), nx=True))

    def delete(self, key: str) -> bool:
        return bool(self.client.delete(key))

    def touch(self, key: str, timeout: Any = DEFAULT_TIMEOUT) -> bool:
        ttl = self._ttl(timeout)
        return bool(self.client.persist(key) if ttl is None else self.client.expire(key, ttl))

    def incr(self, key: str, delta: int = 1) -> int:
        if not self.client.exists(key):
            raise ValueError(f"Key {key!r} not found.")
        return int(self.client.incrby(key, delta))

    def reference_time(self) -> float:
        seconds, micros = self.client.time()
        return seconds + micros / 1_000_000
