"""Paged admin listings (roles, bindings, the reach of a grant), free of gRPC.

A cursor is opaque to callers and holds (tenant, revision, position): every page of one
listing reads the revision the first page was read at, and a cursor presented in another
tenant is refused (revisions are per tenant). `TenantReader` reads one tenant at one
revision the way the engine does (expired relationships are gone).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from authz_service.errors import InvalidArgument
from authz_service.model import Relationship, RelationshipFilter, Revision
from authz_service.store.protocol import Store
from authz_service.tenancy import Binding
from authz_service.tenancy.encoding import BINDING, bindings_from

__all__ = ["Page", "TenantReader", "decode_cursor", "encode_cursor", "page_limit", "page_of"]

T = TypeVar("T")
DEFAULT_PAGE = 100
MAX_PAGE = 1000
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    revision: Revision


def _tag(tenant: str) -> str:
    return hashlib.sha256(tenant.encode()).hexdigest()[:12]


def encode_cursor(tenant: str, revision: Revision, after: str) -> str:
    raw = json.dumps([_tag(tenant), revision, after], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(tenant: str, token: str) -> tuple[Revision, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        tag, revision, after = json.loads(raw)
        if tag != _tag(tenant) or not isinstance(revision, int) or not isinstance(after, str):
            raise ValueError(token)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidArgument(
            "cursor is not one this service issued for this tenant", field="cursor", value=token
        ) from None
    return revision, after


def page_limit(limit: int) -> int:
    if limit > MAX_PAGE:
        raise InvalidArgument(f"limit `{limit}` exceeds {MAX_PAGE}", field="limit", value=limit)
    return limit or DEFAULT_PAGE


def page_of(
    tenant: str, revision: Revision, items: Sequence[T], size: int, position: Callable[[T], str]
) -> Page[T]:
    """The first `size` of `items` (already after the cursor), with the next cursor."""
    shown = list(items[:size])
    more = len(items) > size
    cursor = encode_cursor(tenant, revision, position(shown[-1])) if more and shown else None
    return Page(shown, cursor, revision)


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
