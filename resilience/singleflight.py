"""One refresher per key across the fleet: a short lock in the shared cache.

Many requests finding the same copy old at once cause one query, not many:
the holder of the lock refreshes, the others wait for its result (see
``CachedFallback``). The lock is an ``add`` with a timeout no longer than a
refresh can take, so a holder that died (SIGKILL) keeps nobody waiting long.

Where the lock costs more than it saves it is not taken: with the cache
away nobody could see it, and with the cache slow two round trips (take,
let go) cost more than the query they would spare. Every process then
refreshes for itself ("solo"): better one query each than none at all.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from .clock import Clock
from .sharedcache import CacheUnavailable, SharedCache

LOCK_PREFIX = "resilience:refreshing:"
MARGIN = 1.0  # seconds before the lock's expiry after which it is no longer surely ours


@dataclass(frozen=True)
class Lease:
    """A held lock (``token``), or a solo refresh (token "") that holds none."""

    token: str
    taken_at: float  # monotonic

    @property
    def solo(self) -> bool:
        return not self.token


class SingleFlight:
    """The refresh lock of one named query."""

    def __init__(self, shared: SharedCache, name: str, timeout: float, clock: Clock) -> None:
        self.shared = shared
        self.key = LOCK_PREFIX + name
        self.timeout = timeout
        self.clock = clock

    def acquire(self) -> Lease | None:
        """A lease, or None when another process holds the lock."""
        now = self.clock.monotonic()
        if self.shared.slow:
            return Lease("", now)
        token = f"{id(self):x}-{now}"
        try:
            added = self.shared.run(
                lambda cache: cache.add(self.key, token, self.timeout), late=self._let_go(token)
            )
        except CacheUnavailable:
            return Lease("", now)
        return Lease(token, now) if added else None

    def release(self, lease: Lease) -> None:
        # Only while the lock cannot have expired: after that it may be
        # someone else's, and deleting it would let a third refresh too.
        if lease.solo or self.clock.monotonic() - lease.taken_at > self.timeout - MARGIN:
            return
        with contextlib.suppress(CacheUnavailable):  # it expires by itself
            self.shared.run(lambda cache: cache.delete(self.key))

    def _let_go(self, token: str):
        """For a lock taken after the request gave up on it: nobody refreshes under it."""

        def late(added: bool) -> None:
            if added and self.shared.cache.get(self.key) == token:
                self.shared.cache.delete(self.key)

        return late
