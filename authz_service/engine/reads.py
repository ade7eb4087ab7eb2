"""Relationship reads for one request: at the snapshot's revision, merged with the
request-only (contextual) relationships, split into live and expired.

The store returns expired relationships on purpose (expiry is judged against the
snapshot's `now`, so replay sees what the original decision saw); here they stop existing.
Reads are memoized for the request, since lookups ask the same question per candidate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from authz_service.engine.types import Snapshot
from authz_service.model import Relationship, RelationshipFilter
from authz_service.store.protocol import RelationshipReader

__all__ = ["ReadResult", "Reads", "earliest_expiry"]


@dataclass(frozen=True, slots=True)
class ReadResult:
    live: tuple[Relationship, ...]
    expired: tuple[Relationship, ...]


def earliest_expiry(rels: Iterable[Relationship]) -> datetime | None:
    found: datetime | None = None
    for rel in rels:
        if rel.expires_at is not None and (found is None or rel.expires_at < found):
            found = rel.expires_at
    return found


class Reads:
    def __init__(
        self,
        reader: RelationshipReader,
        snapshot: Snapshot,
        contextual: Sequence[Relationship] = (),
    ) -> None:
        self._reader = reader
        self._snapshot = snapshot
        self._contextual = tuple(contextual)
        self._memo: dict[RelationshipFilter, ReadResult] = {}

    @property
    def has_contextual(self) -> bool:
        return bool(self._contextual)

    async def read(self, flt: RelationshipFilter) -> ReadResult:
        found = self._memo.get(flt)
        if found is not None:
            return found
        snap = self._snapshot
        rels = await self._reader.read(snap.tenant, snap.revision, flt)
        extra = [r for r in self._contextual if flt.matches(r)]
        if extra:
            # A request-only relationship replaces a stored one with the same key.
            keys = {r.key for r in extra}
            rels = [r for r in rels if r.key not in keys] + extra
        now = snap.now
        live = tuple(r for r in rels if r.expires_at is None or r.expires_at > now)
        expired = tuple(r for r in rels if r.expires_at is not None and r.expires_at <= now)
        found = ReadResult(live, expired)
        self._memo[flt] = found
        return found

    def earliest_expiry(self) -> datetime | None:
        """The soonest any live relationship read so far expires: what was derived from
        these reads holds until then (LookupResources' kept walks). Found from the memo,
        which holds every read, when asked, so that no other read pays for it."""
        return earliest_expiry(r for found in self._memo.values() for r in found.live)
