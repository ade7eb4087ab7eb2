"""The decision cache: least recently used out first, expired entries never served."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

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


class _Reference:
    """The LRU rules spelled out on a list, oldest first: what DecisionCache must do."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.order: list[tuple[str, int, datetime | None]] = []

    def get(self, key: str, now: datetime) -> int | None:
        for i, (k, value, until) in enumerate(self.order):
            if k == key:
                del self.order[i]
                if until is not None and now >= until:
                    return None
                self.order.append((k, value, until))
                return value
        return None

    def put(self, key: str, value: int, until: datetime | None) -> None:
        self.order = [e for e in self.order if e[0] != key]
        if len(self.order) >= self.maxsize:
            del self.order[0]
        self.order.append((key, value, until))


_KEYS = st.sampled_from("abcdefgh")
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("get"), _KEYS, st.integers(0, 3)),
        st.tuples(st.just("get_many"), st.lists(_KEYS, max_size=5), st.integers(0, 3)),
        st.tuples(st.just("put"), _KEYS, st.integers(0, 99), st.none() | st.integers(1, 3)),
    ),
    max_size=80,
)


@given(maxsize=st.integers(1, 5), ops=_OPS)
def test_every_sequence_of_operations_matches_the_reference(
    maxsize: int, ops: list[tuple[Any, ...]]
) -> None:
    """Gets, bulk gets, puts (some expiring) in any order: the same answers and the same
    survivors, in recency order, as the rules spelled out."""
    cache: DecisionCache[int] = DecisionCache(maxsize)
    ref = _Reference(maxsize)
    for op in ops:
        if op[0] == "put":
            until = None if op[3] is None else NOW + timedelta(seconds=op[3])
            cache.put(op[1], op[2], until)
            ref.put(op[1], op[2], until)
        elif op[0] == "get":
            at = NOW + timedelta(seconds=op[2])
            assert cache.get(op[1], at) == ref.get(op[1], at)
        else:
            at = NOW + timedelta(seconds=op[2])
            assert cache.get_many(op[1], at) == [ref.get(k, at) for k in op[1]]
    assert cache.stats().size == len(ref.order)
    # Recency order: new keys push the survivors out oldest first, as in the reference.
    # (Expiries are after NOW, so `holds` at NOW says whether an entry is there.)
    for i in range(maxsize):
        cache.put(f"new{i}", -1)
        ref.put(f"new{i}", -1, None)
        kept = {k for k, _, _ in ref.order}
        assert [k for k in "abcdefgh" if cache.holds(k, NOW)] == sorted(kept & set("abcdefgh"))
