"""A bounded LRU of immutable values whose keys carry everything that changes the answer.

Keys always include tenant, revision and schema version, so an entry can never answer a
request at another revision: staleness is bounded by how the revision was chosen, not
by the cache. Values may also expire at an instant (a relationship's expiration).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

__all__ = ["CacheStats", "DecisionCache"]

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    size: int
    maxsize: int


class DecisionCache(Generic[V]):
    """Not thread-safe by design: each worker process owns one and uses it from its loop.

    An OrderedDict in recency order (oldest first): a hit moves its entry to the end, an
    eviction pops the first. Every step is a C-level O(1) operation, which matters
    because a cache hit is the whole work of most calls. Not a plain dict: deleting its
    first entry leaves a hole that every later `next(iter(...))` walks past until the
    next resize, so at 100,000 entries an eviction cost 54-68 µs on average, p99 130-240
    µs (benchmarks/lru_bench.py); and a hit's re-insertion used up a slot, bringing the
    next resize of the whole table closer."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._entries: OrderedDict[Hashable, tuple[V, datetime | None]] = OrderedDict()
        self._maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, key: Hashable, now: datetime) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        value, valid_until = entry
        if valid_until is not None and now >= valid_until:
            # The answer was computed from a relationship that has expired since.
            del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)  # now the most recently used
        self.hits += 1
        return value

    def holds(self, key: Hashable, now: datetime) -> bool:
        """Whether `get` would answer, without counting a hit or a miss or touching the
        recency (a refresh ahead looks before it computes, and is no caller)."""
        entry = self._entries.get(key)
        return entry is not None and (entry[1] is None or now < entry[1])

    def get_many(self, keys: Iterable[Hashable], now: datetime) -> list[V | None]:
        """`get` of each key in order, in one loop (CheckBulk looks up hundreds at once)."""
        entries = self._entries
        get, to_end = entries.get, entries.move_to_end
        found: list[V | None] = []
        append = found.append
        misses = 0
        for key in keys:
            entry = get(key)
            if entry is None:
                append(None)
                misses += 1
            elif entry[1] is not None and now >= entry[1]:  # computed from a relationship
                del entries[key]  # that has expired since
                append(None)
                misses += 1
            else:
                to_end(key)  # now the most recently used
                append(entry[0])
        self.hits += len(found) - misses
        self.misses += misses
        return found

    def put(self, key: Hashable, value: V, valid_until: datetime | None = None) -> None:
        entries = self._entries
        if entries.pop(key, None) is None and len(entries) >= self._maxsize:
            entries.popitem(last=False)  # the least recently used
            self.evictions += 1
        entries[key] = (value, valid_until)

    def clear(self) -> None:
        self._entries.clear()

    def stats(self) -> CacheStats:
        return CacheStats(self.hits, self.misses, self.evictions, len(self._entries), self._maxsize)
