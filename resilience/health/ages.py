"""Ages that say something stopped: a last good copy, a periodic job's heartbeat.

Taken on the clock the processes share, so a host minutes off cannot call
a stale copy fresh.
"""

from __future__ import annotations

import dataclasses

from django.core.cache import caches
from health_check import HealthCheck

from ..errors import describe
from ..fallback import read_copy
from ..sharedcache import shared_cache
from .messages import iso_or_unknown, unavailable

HEARTBEAT_PREFIX = "resilience:heartbeat:"


def _age_check(
    what: str, when: float | None, max_age: float, missing: str, cache_alias: str
) -> None:
    """Ages on the clock the processes share: a host minutes off must not call stale fresh."""
    if when is None:
        raise unavailable(missing)
    age = shared_cache(cache_alias).now() - when
    if age > max_age:
        at = iso_or_unknown(when)
        raise unavailable(f"{what} is {age:.0f} s old (at {at}; limit {max_age:g} s)")


@dataclasses.dataclass
class FallbackFreshness(HealthCheck):
    """The last good copy of a named ``CachedFallback`` query is younger than ``max_age``.

    ``query`` is the fallback's name (``CachedFallback.name``). A copy grows
    old when nothing refreshes it: QuestDB failing, or no beat running.
    """

    query: str
    max_age: float = dataclasses.field(default=120.0, repr=False)
    cache_alias: str = dataclasses.field(default="default", repr=False)

    def run(self) -> None:
        try:
            copy = read_copy(self.query, self.cache_alias)
        except Exception as exc:
            raise unavailable(f"cannot read the copy of {self.query!r}: {describe(exc)}") from exc
        # Fresh as of the last answer, empty or not: an empty answer is an answer.
        answered = copy.last_answer_at if copy else None
        _age_check(
            f"the last good copy of {self.query!r}",
            answered.timestamp() if answered else None,
            self.max_age,
            f"no good copy of {self.query!r} yet: it has never been loaded",
            self.cache_alias,
        )


def record_heartbeat(name: str, *, cache_alias: str = "default", when: float | None = None) -> None:
    """Say that the periodic job ``name`` ran (kept without expiry), on the shared clock."""
    if when is None:
        when = shared_cache(cache_alias).now()
    caches[cache_alias].set(HEARTBEAT_PREFIX + name, when, None)


def last_heartbeat(name: str, *, cache_alias: str = "default") -> float | None:
    """When the periodic job ``name`` last ran (epoch seconds), or None."""
    return caches[cache_alias].get(HEARTBEAT_PREFIX + name)


@dataclasses.dataclass
class Heartbeat(HealthCheck):
    """A periodic job (``name``) recorded a heartbeat less than ``max_age`` seconds ago."""

    name: str
    max_age: float = dataclasses.field(default=60.0, repr=False)
    cache_alias: str = dataclasses.field(default="default", repr=False)
    hint: str = dataclasses.field(default="", repr=False)

    def run(self) -> None:
        try:
            when = last_heartbeat(self.name, cache_alias=self.cache_alias)
        except Exception as exc:
            raise unavailable(f"cannot read heartbeat {self.name!r}: {describe(exc)}") from exc
        missing = f"no heartbeat from {self.name!r} yet"
        if self.hint:
            missing += f": {self.hint}"
        what = f"the last heartbeat of {self.name!r}"
        _age_check(what, when, self.max_age, missing, self.cache_alias)
