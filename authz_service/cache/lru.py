"""A bounded LRU of immutable values whose keys carry everything that changes the answer.

Keys always include tenant, revision and schema version, so an entry can never answer a
request at another revision: staleness is bounded by how the revision was chosen, not
by the cache. Values may also expire at an instant (a relationship's expiration).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from cachetools import LRUCache

__all__ = ["CacheStats", "DecisionCache"]

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    size: int
    maxsize: int


class _CountingLRU(LRUCache[Hashable, tuple[object, datetime | None]]):
    evictions = 0

    def popitem(self) -> tuple[Hashable, tuple[object, datetime | None]]:
        self.evictions += 1
        return super().popitem()


class DecisionCache(Generic[V]):
    """Not thread-safe by design: each worker process owns one and uses it from its loop."""

    def __init__(self, maxsize: int) -> None:
        self._lru = _CountingLRU(maxsize=maxsize)
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, now: datetime) -> V | None:
        entry = self._lru.get(key)
        if entry is None:
            self.misses += 1
            return None
        value, valid_until = entry
        if valid_until is not None and now >= valid_until:
            # The answer was computed from a relationship that has expired since.
            del self._lru[key]
            self.misses += 1
            return None
        self.hits += 1
        return value  # type: ignore[return-value]

    def put(self, key: Hashable, value: V, valid_until: datetime | None = None) -> None:
        self._lru[key] = (value, valid_until)

    def clear(self) -> None:
        self._lru.clear()

    def stats(self) -> CacheStats:
        return CacheStats(
            self.hits, self.misses, self._lru.evictions, len(self._lru), int(self._lru.maxsize)
        )
