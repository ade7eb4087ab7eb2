"""Choosing the revision a read runs at, from the caller's consistency request.

- fully_consistent: the database head, always a round trip (and the cache is bypassed
  by the caller); the call's relationship reads then stay on the primary, never on a
  read replica (`store/routing.py`);
- at_least_as_fresh(R): the newest head known without a round trip if it is >= R,
  otherwise the database head, which must then be >= R;
- at_exact_snapshot(R): exactly R, if still inside the retention window;
- minimize_latency: a revision known to have been the head less than the staleness window
  ago, quantized: the newest known head is pinned for `quantum_s` (default: the whole
  staleness window) and every minimize_latency read of the tenant in that window uses the
  pinned revision, as long as it was known to be the head within the staleness window.
  Keys of the decision caches carry the revision, so without the pin every write (20 a
  second on a busy tenant) would start a new key space and empty the cache; with it the
  key space changes at most once per window. Read-your-writes is what tokens are for
  (at_least_as_fresh), not minimize_latency. Shortly before a window ends, `upcoming`
  chooses the next window's revision (a head known within the staleness window, as any
  pin), so that a caller can compute at it what it expects to be asked (refresh ahead);
  the next window then pins that revision while it is still fresh enough.

`resolve_read` also says which schema the read must use at least (`SchemaRecord.seq`):
the token's, or for fully_consistent the database's current schema, read in the same
round trip as the head.

A known head comes from this process's own writes and from a tracker fed by database
notifications, so a replica learns other replicas' writes within milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from authz_service.errors import FailedPrecondition, echo
from authz_service.model import Consistency, ConsistencyMode, Revision
from authz_service.store.protocol import RevisionSource
from authz_service.store.routing import require_primary

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
        quantum_s: float | None = None,
        tracker: HeadTracker | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock` is the monotonic clock the tracker's times come from."""
        self._source = source
        self._clock = clock
        self._tracker = tracker
        self._max_staleness = max_staleness_s
        self._quantum = max_staleness_s if quantum_s is None else min(quantum_s, max_staleness_s)
        self._known: dict[str, tuple[Revision, float]] = {}
        # tenant -> (revision, when it was known to be the head, when it was pinned)
        self._pinned: dict[str, tuple[Revision, float, float]] = {}
        # tenant -> (revision, when it was known to be the head): the next window's pin,
        # chosen ahead by `upcoming`
        self._next: dict[str, tuple[Revision, float]] = {}

    def observe(self, tenant: str, revision: Revision) -> None:
        """Record a head learned from a local write or a fresh database read."""
        current = self._known.get(tenant)
        if current is None or revision >= current[0]:
            self._known[tenant] = (revision, self._clock())

    def forget(self, tenant: str) -> None:
        """Drop what this replica knows of a deleted tenant's head."""
        self._known.pop(tenant, None)
        self._pinned.pop(tenant, None)
        self._next.pop(tenant, None)

    def _best_known(self, tenant: str) -> tuple[Revision, float] | None:
        best: tuple[Revision, float] | None = self._known.get(tenant)
        if self._tracker is not None:
            tracked = self._tracker.known_head(tenant)
            if tracked is not None and (best is None or tracked[0] >= best[0]):
                best = tracked
        if best is None or self._clock() - best[1] > self._max_staleness:
            return None
        return best

    def _fresh_known(self, tenant: str) -> Revision | None:
        best = self._best_known(tenant)
        return best[0] if best is not None else None

    def _pinned_revision(self, tenant: str) -> Revision | None:
        pin = self._pinned.get(tenant)
        if pin is None:
            return None
        now = self._clock()
        if now - pin[2] >= self._quantum or now - pin[1] > self._max_staleness:
            return None
        return pin[0]

    def upcoming(self, tenant: str, lead_s: float) -> Revision | None:
        """The revision the next window of `tenant` will pin, once the current window has
        less than `lead_s` to run: a head known within the staleness window and newer
        than the current pin. Returned once per window; None before that, without a
        current pin, or when no newer head is known (the next window would then answer
        from the same revision, and what is cached for it stays good)."""
        pin = self._pinned.get(tenant)
        if pin is None or self._quantum <= 0 or tenant in self._next:
            return None
        ends = min(pin[2] + self._quantum, pin[1] + self._max_staleness)
        if self._clock() < ends - lead_s:
            return None
        best = self._best_known(tenant)
        if best is None or best[0] <= pin[0]:
            return None
        self._next[tenant] = best
        return best[0]

    async def _quantized(self, tenant: str) -> Revision:
        pinned = self._pinned_revision(tenant)
        if pinned is not None:
            return pinned
        # The revision chosen ahead, if it is still fresh enough to pin: it is what the
        # refresh ahead computed at (a newer head may be known by now; either may be used).
        best = self._next.pop(tenant, None)
        if best is not None and self._clock() - best[1] > self._max_staleness:
            best = None
        if best is None:
            best = self._best_known(tenant)
        if best is None:
            best = (await self._database_head(tenant), self._clock())
        if self._quantum > 0:
            self._pinned[tenant] = (best[0], best[1], self._clock())
        return best[0]

    async def _database_head(self, tenant: str) -> Revision:
        head = await self._source.head_revision(tenant)
        self.observe(tenant, head)
        return head

    async def resolve_read(self, tenant: str, consistency: Consistency) -> tuple[Revision, int]:
        """(revision, the oldest schema seq the read may decide with)."""
        if consistency.mode is ConsistencyMode.FULLY_CONSISTENT:
            require_primary()
            head, schema_seq = await self._source.heads(tenant)
            self.observe(tenant, head)
            return head, schema_seq
        return await self.resolve(tenant, consistency), consistency.schema_seq

    async def resolve(self, tenant: str, consistency: Consistency) -> Revision:
        mode = consistency.mode
        if mode is ConsistencyMode.FULLY_CONSISTENT:
            require_primary()
            return await self._database_head(tenant)
        if mode is ConsistencyMode.MINIMIZE_LATENCY:
            return await self._quantized(tenant)
        wanted = consistency.revision
        if wanted is None:
            raise FailedPrecondition(f"consistency `{echo(mode.value)}` needs a token")
        if mode is ConsistencyMode.AT_EXACT_SNAPSHOT:
            await self._source.check_revision(tenant, wanted)
            return wanted
        pinned = self._pinned_revision(tenant)
        if pinned is not None and pinned >= wanted:
            return pinned  # shares the cache of minimize_latency readers, never older
        known = self._fresh_known(tenant)
        if known is not None and known >= wanted:
            return known
        head = await self._database_head(tenant)
        if head < wanted:
            raise FailedPrecondition(
                f"token revision `{echo(wanted)}` is newer than the head `{echo(head)}` of tenant `{echo(tenant)}`"
            )
        return head
