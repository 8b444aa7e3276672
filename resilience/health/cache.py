"""A cache that stores, answers and forgets; and Redis's own ping."""

from __future__ import annotations

import dataclasses
import datetime
import time
import uuid
from typing import Any

from django.core.cache import caches
from health_check import HealthCheck
from health_check.exceptions import ServiceUnavailable

from ..errors import describe
from .messages import unavailable


@dataclasses.dataclass
class CacheRoundTrip(HealthCheck):
    """Set, get and delete a unique key: the cache stores, answers and forgets."""

    alias: str = "default"
    timeout: datetime.timedelta = dataclasses.field(
        default=datetime.timedelta(seconds=3), repr=False
    )

    def run(self) -> None:
        key = f"resilience:health:{uuid.uuid4().hex}"
        value = f"ok-{time.time()}"
        try:
            cache = caches[self.alias]
            cache.set(key, value, 30)
            if cache.get(key) != value:
                raise unavailable(f"cache {self.alias!r} did not return the value just set")
            cache.delete(key)
            if cache.get(key) is not None:
                raise unavailable(f"cache {self.alias!r} still holds a deleted key")
        except ServiceUnavailable:
            raise
        except Exception as exc:
            raise unavailable(
                f"cache {self.alias!r} failed: {type(exc).__name__}: {describe(exc)}"
            ) from exc


def redis_check(url: str, timeout: float = 1.0) -> tuple[type[HealthCheck], dict[str, Any]]:
    """django-health-check's Redis ping for ``url``, with connect and read timeouts.

    Its report names host, port and db only, never the URL's password.
    """
    from health_check.contrib.redis import Redis
    from redis.asyncio import Redis as RedisClient

    def client_factory() -> RedisClient:
        return RedisClient.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, retry_on_timeout=False
        )

    return Redis, {"client_factory": client_factory}
