"""Paged admin listings (roles, bindings, the reach of a grant), free of gRPC.

A page is the first `size` items after a position, read at one revision, with the
position to continue from; the API turns (revision, position) into a cursor bound to
the call (`api/cursors.py`) and reads later pages at that revision. `TenantReader` reads
one tenant at one revision the way the engine does (expired relationships are gone).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from authz_service.errors import InvalidArgument, echo
from authz_service.model import Relationship, RelationshipFilter, Revision
from authz_service.store.protocol import Store
from authz_service.tenancy import Binding
from authz_service.tenancy.encoding import BINDING, bindings_from

__all__ = ["Page", "TenantReader", "page_limit", "page_of"]

T = TypeVar("T")
DEFAULT_PAGE = 100
MAX_PAGE = 1000
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_after: str | None  # the last item's position, when more follow
    revision: Revision


def page_limit(limit: int) -> int:
    if limit > MAX_PAGE:
        raise InvalidArgument(
            f"limit `{echo(limit)}` exceeds {MAX_PAGE}", field="limit", value=limit
        )
    return limit or DEFAULT_PAGE


def page_of(
    revision: Revision, items: Sequence[T], size: int, position: Callable[[T], str]
) -> Page[T]:
    """The first `size` of `items` (already after the position asked for)."""
    shown = list(items[:size])
    more = len(items) > size
    return Page(shown, position(shown[-1]) if more and shown else None, revision)


class TenantReader:
    """Reads of one tenant at one revision, with expired relationships gone (judged at
    `now`, as the engine does)."""

    def __init__(self, store: Store, tenant: str, revision: Revision, now: datetime) -> None:
        self.store, self.tenant, self.revision, self.now = store, tenant, revision, now

    async def read(self, flt: RelationshipFilter) -> list[Relationship]:
        rels = await self.store.read(self.tenant, self.revision, flt)
        return [r for r in rels if r.expires_at is None or r.expires_at > self.now]

    async def bindings(self, ids: Iterable[str]) -> dict[str, Binding]:
        ordered = sorted(set(ids))
        rels: list[Relationship] = []
        for start in range(0, len(ordered), _CHUNK):
            chunk = tuple(ordered[start : start + _CHUNK])
            rels += await self.read(RelationshipFilter(BINDING, chunk))
        return bindings_from(rels)

    async def binding_ids(self, flt: RelationshipFilter) -> set[str]:
        return {rel.resource.id for rel in await self.read(flt)}
