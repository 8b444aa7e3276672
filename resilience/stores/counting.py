"""Counting in a shared cache, atomically on every backend the store accepts.

Redis, Memcached and the local-memory cache increment atomically: ``incr``.
Django's database cache increments by reading, then writing (8 processes
failing 25 times each stored 99 of 200), but its ``add`` is atomic (a
unique key). There a failure claims the next numbered slot with ``add``:
the slot it gets is the count; and a process's calls of one second (the
window rules' buckets) go into a numbered slot of their own, summed by the
reader (at most ``READ_LIMIT`` sends per bucket: eight processes sending
twice a second). The file cache has neither; the system check refuses it
for a shared store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

READ_LIMIT = 16  # slots read when a process refreshes its view of the count


class Counter(ABC):
    @abstractmethod
    def add(self, cache: Any, key: str, ttl: int, known: int, weight: int = 1) -> int:
        """Count ``weight`` more under ``key``; ``known`` is a count this process saw there."""

    @abstractmethod
    def keys(self, key: str) -> list[str]:
        """The cache keys to read for the count under ``key``."""

    @abstractmethod
    def read(self, found: dict[str, Any], key: str) -> int:
        """The count under ``key`` from what ``get_many(self.keys(key))`` found."""

    @abstractmethod
    def deposit(self, cache: Any, key: str, ttl: int, amount: int) -> None:
        """Add ``amount`` (any size: packed figures) under ``key``."""

    @abstractmethod
    def total(self, found: dict[str, Any], key: str) -> int:
        """The sum of the amounts deposited under ``key``, from ``get_many(self.keys(key))``."""


class IncrCounter(Counter):
    def add(self, cache: Any, key: str, ttl: int, known: int, weight: int = 1) -> int:
        for _ in range(3):
            if cache.add(key, weight, ttl):
                return weight
            try:
                return int(cache.incr(key, weight))
            except ValueError:  # expired between the two: create it again
                continue
        return known + weight

    def keys(self, key: str) -> list[str]:
        return [key]

    def read(self, found: dict[str, Any], key: str) -> int:
        return int(found.get(key) or 0)

    def deposit(self, cache: Any, key: str, ttl: int, amount: int) -> None:
        self.add(cache, key, ttl, 0, amount)

    total = read


class SlotCounter(Counter):
    def add(self, cache: Any, key: str, ttl: int, known: int, weight: int = 1) -> int:
        slot = known  # slots up to a count seen are taken: they are never given back
        for _ in range(weight):
            slot += 1
            while not cache.add(f"{key}:{slot}", 1, ttl):
                slot += 1
        return slot

    def keys(self, key: str) -> list[str]:
        return [f"{key}:{slot}" for slot in range(1, READ_LIMIT + 1)]

    def read(self, found: dict[str, Any], key: str) -> int:
        count = 0
        while count < READ_LIMIT and f"{key}:{count + 1}" in found:
            count += 1
        return count

    def deposit(self, cache: Any, key: str, ttl: int, amount: int) -> None:
        slot = 1
        while not cache.add(f"{key}:{slot}", amount, ttl) and slot < READ_LIMIT:
            slot += 1

    def total(self, found: dict[str, Any], key: str) -> int:
        return sum(int(found[f"{key}:{slot}"]) for slot in range(1, self.read(found, key) + 1))


def increments_atomically(cache: Any) -> bool:
    """Whether ``cache.incr`` is atomic across processes."""
    declared = getattr(cache, "atomic_incr", None)
    if declared is not None:
        return bool(declared)
    from django.core.cache.backends.db import DatabaseCache
    from django.core.cache.backends.filebased import FileBasedCache

    return not isinstance(cache, DatabaseCache | FileBasedCache)


def counter_for(cache: Any) -> Counter:
    return IncrCounter() if increments_atomically(cache) else SlotCounter()
