"""The decision cache: least recently used out first, expired entries never served."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from authz_service.cache.lru import DecisionCache

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_the_least_recently_used_entry_is_evicted() -> None:
    cache: DecisionCache[str] = DecisionCache(2)
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a", NOW) == "A"  # now b is the oldest
    cache.put("c", "C")
    assert cache.get("b", NOW) is None
    assert (cache.get("a", NOW), cache.get("c", NOW)) == ("A", "C")
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.evictions, stats.size, stats.maxsize) == (
        3,
        1,
        1,
        2,
        2,
    )


def test_replacing_an_entry_evicts_nothing() -> None:
    cache: DecisionCache[int] = DecisionCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 3)
    assert (cache.get("a", NOW), cache.get("b", NOW)) == (3, 2)
    assert cache.stats().evictions == 0


def test_an_expired_answer_is_a_miss_and_is_dropped() -> None:
    cache: DecisionCache[str] = DecisionCache(4)
    cache.put("k", "v", valid_until=NOW + timedelta(seconds=1))
    assert cache.get("k", NOW) == "v"
    assert cache.get("k", NOW + timedelta(seconds=1)) is None
    assert cache.stats().size == 0
    assert cache.get("k", NOW) is None  # gone, not merely hidden


def test_many_lookups_at_once_are_each_a_get() -> None:
    one: DecisionCache[str] = DecisionCache(3)
    many: DecisionCache[str] = DecisionCache(3)
    for cache in (one, many):
        cache.put("a", "A")
        cache.put("b", "B", valid_until=NOW)  # expired at NOW
        cache.put("c", "C")
    keys = ["c", "x", "b", "a", "a"]
    assert many.get_many(keys, NOW) == [one.get(k, NOW) for k in keys]
    assert many.stats() == one.stats()
    for cache in (one, many):
        cache.put("d", "D")
        cache.put("e", "E")  # evicts the least recently used: c, looked up before a
    assert many.get_many(["c", "a", "d", "e"], NOW) == [None, "A", "D", "E"]
    assert [one.get(k, NOW) for k in ("c", "a", "d", "e")] == [None, "A", "D", "E"]
