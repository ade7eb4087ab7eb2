"""Choosing the revision a read runs at, from the caller's consistency request.

- fully_consistent: the database head, always a round trip (and the cache is bypassed
  by the caller);
- at_least_as_fresh(R): the newest head known without a round trip if it is >= R,
  otherwise the database head, which must then be >= R;
- at_exact_snapshot(R): exactly R, if still inside the retention window;
- minimize_latency: the newest head known within the staleness window, else a round trip.

A known head comes from this process's own writes and from a tracker fed by database
notifications, so a replica learns other replicas' writes within milliseconds.
"""

from __future__ import annotations

import time
from typing import Protocol

from authz_service.errors import FailedPrecondition
from authz_service.model import Consistency, ConsistencyMode, Revision
from authz_service.store.protocol import RevisionSource

__all__ = ["HeadTracker", "RevisionResolver"]


class HeadTracker(Protocol):
    def known_head(self, tenant: str) -> tuple[Revision, float] | None:
        """(revision, monotonic time at which it was known to be the head), if any."""
        ...


class RevisionResolver:
    def __init__(
        self,
        source: RevisionSource,
        *,
        max_staleness_s: float = 1.0,
        tracker: HeadTracker | None = None,
    ) -> None:
        self._source = source
        self._tracker = tracker
        self._max_staleness = max_staleness_s
        self._known: dict[str, tuple[Revision, float]] = {}

    def observe(self, tenant: str, revision: Revision) -> None:
        """Record a head learned from a local write or a fresh database read."""
        current = self._known.get(tenant)
        if current is None or revision >= current[0]:
            self._known[tenant] = (revision, time.monotonic())

    def _fresh_known(self, tenant: str) -> Revision | None:
        best: tuple[Revision, float] | None = self._known.get(tenant)
        if self._tracker is not None:
            tracked = self._tracker.known_head(tenant)
            if tracked is not None and (best is None or tracked[0] >= best[0]):
                best = tracked
        if best is None or time.monotonic() - best[1] > self._max_staleness:
            return None
        return best[0]

    async def _database_head(self, tenant: str) -> Revision:
        head = await self._source.head_revision(tenant)
        self.observe(tenant, head)
        return head

    async def resolve(self, tenant: str, consistency: Consistency) -> Revision:
        mode = consistency.mode
        if mode is ConsistencyMode.FULLY_CONSISTENT:
            return await self._database_head(tenant)
        if mode is ConsistencyMode.MINIMIZE_LATENCY:
            known = self._fresh_known(tenant)
            return known if known is not None else await self._database_head(tenant)
        wanted = consistency.revision
        if wanted is None:
            raise FailedPrecondition(f"consistency `{mode.value}` needs a token")
        if mode is ConsistencyMode.AT_EXACT_SNAPSHOT:
            await self._source.check_revision(tenant, wanted)
            return wanted
        known = self._fresh_known(tenant)
        if known is not None and known >= wanted:
            return known
        head = await self._database_head(tenant)
        if head < wanted:
            raise FailedPrecondition(
                f"token revision `{wanted}` is newer than the head `{head}` of tenant `{tenant}`"
            )
        return head
