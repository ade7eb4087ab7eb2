"""The cross-request subproblem cache: a decorator on the engine's dispatcher seam.

Every nested question of a check ("is alice a member of group:eng at revision 42 under
schema v?") is looked up here before it is evaluated, so hot groups and folders are
computed once per revision for all requests, not once per request. Keys are
`Subproblem.cache_key` (tenant, revision, schema version, subproblem, context). An entry
is served only for an evaluation time between when it was computed and its
`valid_until` (the first expiry among the relationships it read): an older `now`, as in
a replay, may still see relationships that had expired by then.

Entries hold only strings, ints, bools, None and datetimes (`Stored`), never model
objects: such tuples are not tracked by Python's cycle collector, so a full cache costs
its full collections nothing. With `SubResult`s in it, each full collection walked every
entry (hundreds of thousands of objects: pauses of 100-250 ms on the event loop under
uncached load, measured with `gc.callbacks`), which is where the tail of uncached
latency went (docs/performance.md, "Uncached p99 and the cycle collector").
"""

from __future__ import annotations

from datetime import datetime

from authz_service.cache.lru import DecisionCache
from authz_service.engine import Dispatcher, Subproblem, SubResult
from authz_service.engine.tristate import FALSE, TRUE, Tri

__all__ = ["CachingDispatcher", "Stored"]

# (value, the missing caveat parameters sorted, valid_until, when it was computed)
Stored = tuple[bool | None, tuple[str, ...], datetime | None, datetime]

_PLAIN = {True: SubResult(TRUE), False: SubResult(FALSE)}  # the common answers, shared


class CachingDispatcher:
    def __init__(self, inner: Dispatcher, cache: DecisionCache[Stored]):
        self._inner = inner
        self._cache = cache

    async def dispatch(self, req: Subproblem) -> SubResult:
        now = req.snapshot.now
        key = req.cache_key
        hit = self._cache.get(key, now)
        if hit is not None and hit[3] <= now:
            return _loaded(hit)
        result = await self._inner.dispatch(req)
        if result.cacheable and result.explanation is None:
            tri = result.value
            stored = (tri.value, tuple(sorted(tri.missing)), result.valid_until, now)
            self._cache.put(key, stored, result.valid_until)
        return result


def _loaded(stored: Stored) -> SubResult:
    value, missing, valid_until, _ = stored
    if valid_until is None and value is not None and not missing:
        return _PLAIN[value]
    return SubResult(Tri(value, frozenset(missing)), valid_until)
