"""The cross-request subproblem cache: a decorator on the engine's dispatcher seam.

Every nested question of a check ("is alice a member of group:eng at revision 42 under
schema v?") is looked up here before it is evaluated, so hot groups and folders are
computed once per revision for all requests, not once per request. Keys are
`Subproblem.cache_key` (tenant, revision, schema version, subproblem, context). An entry
is served only for an evaluation time between when it was computed and its
`valid_until` (the first expiry among the relationships it read): an older `now`, as in
a replay, may still see relationships that had expired by then.
"""

from __future__ import annotations

from datetime import datetime

from authz_service.cache.lru import DecisionCache
from authz_service.engine import Dispatcher, Subproblem, SubResult

__all__ = ["CachingDispatcher"]


class CachingDispatcher:
    def __init__(self, inner: Dispatcher, cache: DecisionCache[tuple[SubResult, datetime]]):
        self._inner = inner
        self._cache = cache

    async def dispatch(self, req: Subproblem) -> SubResult:
        now = req.snapshot.now
        key = req.cache_key
        hit = self._cache.get(key, now)
        if hit is not None and hit[1] <= now:
            return hit[0]
        result = await self._inner.dispatch(req)
        if result.cacheable and result.explanation is None:
            self._cache.put(key, (result, now), result.valid_until)
        return result
