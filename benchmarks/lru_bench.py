"""The decision cache's operations at steady state, against a plain-dict LRU.

    python benchmarks/lru_bench.py [--size 100000] [--ops 300000] [--rounds 5] [--seed 7]

Fills a `DecisionCache` of `--size` entries, then times each of `--ops` operations of
an uncached workload (a miss's `put`, which evicts the least recently used entry) and a
cached one (a `get` that hits, over seeded random keys), one by one with
`perf_counter_ns`. The baseline is the design main had before (a plain dict in recency
order, eviction by `next(iter(...))`, a hit taken out and put back), measured in the
same rounds. Reports the median of the rounds' means, p99 and maximum per operation.

Why a baseline in the file: deleting a dict's first entry leaves a hole that every
later `next(iter(...))` walks past until the dict is resized, so the plain dict's
eviction grows with the size of the cache (docs/performance.md, "The LRU's eviction").
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Hashable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from authz_service.cache.lru import DecisionCache

NOW = datetime.now(UTC)


class PlainDictLRU:
    """The baseline: the earlier DecisionCache, a dict in recency order."""

    def __init__(self, maxsize: int) -> None:
        self._entries: dict[Hashable, tuple[Any, datetime | None]] = {}
        self._maxsize = maxsize

    def get(self, key: Hashable, now: datetime) -> Any:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self._entries[key] = entry
        return entry[0]

    def put(self, key: Hashable, value: Any, valid_until: datetime | None = None) -> None:
        entries = self._entries
        entries.pop(key, None)
        if len(entries) >= self._maxsize:
            del entries[next(iter(entries))]
        entries[key] = (value, valid_until)


def _key(i: int) -> tuple[str, int, str]:
    return ("bench", i, "document:d#view@user:u")


def _times(cache: Any, size: int, ops: int, rng: random.Random) -> dict[str, list[int]]:
    for i in range(size):
        cache.put(_key(i), i)
    clock = time.perf_counter_ns
    puts, gets = [], []
    nxt = size
    for _ in range(ops):
        key = _key(nxt)
        nxt += 1
        t = clock()
        cache.put(key, nxt)
        puts.append(clock() - t)
    for _ in range(ops):
        key = _key(nxt - 1 - rng.randrange(size))  # present: among the newest `size`
        t = clock()
        cache.get(key, NOW)
        gets.append(clock() - t)
    return {"put (evicts)": puts, "get (hit)": gets}


def _p(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--ops", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    kinds = {"DecisionCache": DecisionCache, "plain dict (baseline)": PlainDictLRU}
    rows: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for r in range(args.rounds):
        for name, kind in kinds.items():  # interleaved: both see the same machine
            times = _times(kind(args.size), args.size, args.ops, random.Random(args.seed + r))
            for op, values in times.items():
                mean = statistics.fmean(values) / 1000
                rows.setdefault((name, op), []).append((mean, _p(values, 0.99), max(values) / 1000))
    print(f"size {args.size:,}, {args.ops:,} operations of each kind, {args.rounds} rounds")
    print("| cache | operation | mean µs (median of rounds) | p99 µs | max µs |")
    print("|---|---|---:|---:|---:|")
    for (name, op), found in rows.items():
        mean = statistics.median(f[0] for f in found)
        p99 = statistics.median(f[1] for f in found)
        worst = max(f[2] for f in found)
        print(f"| {name} | {op} | {mean:.2f} | {p99:.2f} | {worst:,.0f} |")


if __name__ == "__main__":
    main()
