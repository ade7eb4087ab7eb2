"""In-memory store: the reference backend for tests, `authz validate` and the engine.

Same MVCC model as PostgreSQL: a row is never changed except to stamp the revision that
deleted it. Not durable and not shared between processes, by design.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from authz_service.errors import AlreadyExists, FailedPrecondition, InvalidArgument, echo
from authz_service.model import (
    Relationship,
    RelationshipFilter,
    RelationshipKind,
    RelationshipUpdate,
    ReplayedRevision,
    Revision,
    UpdateOp,
)
from authz_service.store.idempotency import key_reused, request_digest
from authz_service.store.memory_keys import MemoryKeyStore
from authz_service.store.memory_tenants import MemoryTenants
from authz_service.store.protocol import Change, Precondition, SchemaRecord, WholeResources
from authz_service.store.registry import TenantRecord, TenantState, refused
from authz_service.store.scim import MemoryScimRecords
from authz_service.store.service_accounts import MemoryServiceAccounts

__all__ = ["MemoryStore", "sort_key"]


def sort_key(rel: Relationship) -> tuple[str, str, str, str, str, str]:
    s = rel.subject
    return (rel.resource.type, rel.resource.id, rel.relation, s.type, s.id, s.relation)


@dataclass(slots=True)
class _Row:
    rel: Relationship
    created: Revision
    deleted: Revision | None = None

    def live_at(self, revision: Revision) -> bool:
        return self.created <= revision and (self.deleted is None or self.deleted > revision)


@dataclass(slots=True)
class _Tenant:
    head: Revision = 0
    rows: list[_Row] = field(default_factory=list)
    live: dict[tuple[object, ...], _Row] = field(default_factory=dict)
    # key -> (revision, digest of the request it was first used with)
    idempotency: dict[str, tuple[Revision, bytes]] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    state: TenantState = TenantState.ACTIVE
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def record(self, name: str) -> TenantRecord:
        return TenantRecord(name, self.state, self.created_at, self.updated_at, self.head)


def _check_distinct(updates: Sequence[RelationshipUpdate]) -> None:
    seen: set[tuple[object, ...]] = set()
    for update in updates:
        key = update.relationship.key
        if key in seen:
            raise InvalidArgument(
                f"relationship `{echo(update.relationship)}` appears twice in one write",
                field="updates",
                value=str(update.relationship),
            )
        seen.add(key)


class MemoryStore:
    """Implements `authz_service.store.protocol.Store` in process memory."""

    def __init__(self) -> None:
        self._tenants: dict[str, _Tenant] = {}
        self._schemas: list[SchemaRecord] = []
        self._lock = asyncio.Lock()
        self.keys = MemoryKeyStore()
        self.tenants = MemoryTenants(self)
        self.scim = MemoryScimRecords(deleted=self._deleted)
        self.service_accounts = MemoryServiceAccounts()
        self.keys.owner_disabled_at = self.service_accounts.disabled_at

    @property
    def lock(self) -> asyncio.Lock:
        return self._lock

    def _tenant(self, tenant: str) -> _Tenant:
        """The tenant a write changes (registered by its first write, as PostgreSQL's
        store does); refused unless active."""
        state = self._tenants.setdefault(tenant, _Tenant())
        if state.state is not TenantState.ACTIVE:
            raise refused(tenant, state.state)
        return state

    # --- the registry's side (MemoryTenants), called under the lock ----------------------

    def _deleted(self, tenant: str) -> bool:
        state = self._tenants.get(tenant)
        return state is not None and state.state is TenantState.DELETED

    def tenant_state(self, tenant: str) -> _Tenant | None:
        return self._tenants.get(tenant)

    def tenant_states(self) -> Iterator[tuple[str, _Tenant]]:
        return iter(list(self._tenants.items()))

    def register(self, tenant: str) -> _Tenant:
        old = self._tenants.get(tenant)
        # A deleted tenant keeps its head: revisions never repeat under one name.
        state = self._tenants[tenant] = _Tenant(head=old.head if old else 0)
        return state

    def apply_as(
        self, tenant: str, status: TenantState, updates: Sequence[RelationshipUpdate]
    ) -> Revision:
        state = self._tenants[tenant]
        revision = state.head + 1
        for update in updates:
            self._apply(state, update, revision)
        state.head = revision
        state.state = status
        state.updated_at = datetime.now(UTC)
        return revision

    def purge(self, tenant: str) -> None:
        old = self._tenants[tenant]
        gone = _Tenant(head=old.head + 1, state=TenantState.DELETED, created_at=old.created_at)
        self._tenants[tenant] = gone
        self.scim.purge(tenant)
        self.service_accounts.purge(tenant)

    async def read(
        self,
        tenant: str,
        revision: Revision,
        flt: RelationshipFilter,
        *,
        limit: int | None = None,
        after: Relationship | None = None,
    ) -> list[Relationship]:
        state = self._tenants.get(tenant)
        if state is None:
            return []
        found = [r.rel for r in state.rows if r.live_at(revision) and flt.matches(r.rel)]
        found.sort(key=sort_key)
        if after is not None:
            cursor = sort_key(after)
            found = [r for r in found if sort_key(r) > cursor]
        return found[:limit] if limit is not None else found

    async def write(
        self,
        tenant: str,
        updates: Sequence[RelationshipUpdate],
        *,
        preconditions: Sequence[Precondition] = (),
        idempotency_key: str | None = None,
    ) -> Revision:
        # Input errors first, whatever the stored state (as the PostgreSQL store does).
        _check_distinct(updates)
        async with self._lock:
            state = self._tenant(tenant)
            digest = request_digest(updates, preconditions)
            if idempotency_key is not None and idempotency_key in state.idempotency:
                first, first_digest = state.idempotency[idempotency_key]
                if first_digest != digest:
                    raise key_reused(idempotency_key)
                return ReplayedRevision(first)
            self._check_preconditions(state, preconditions)
            for update in updates:
                if update.op is UpdateOp.CREATE and update.relationship.key in state.live:
                    raise AlreadyExists(
                        f"relationship `{echo(update.relationship)}` already exists"
                    )
            revision = state.head + 1
            for update in updates:
                self._apply(state, update, revision)
            state.head = revision
            if idempotency_key is not None:
                state.idempotency[idempotency_key] = (revision, digest)
            return revision

    async def delete(
        self,
        tenant: str,
        flt: RelationshipFilter,
        *,
        preconditions: Sequence[Precondition] = (),
    ) -> tuple[Revision, int]:
        async with self._lock:
            state = self._tenant(tenant)
            self._check_preconditions(state, preconditions)
            doomed = [row.rel for row in state.live.values() if flt.matches(row.rel)]
            revision = state.head + 1
            for rel in doomed:
                self._apply(state, RelationshipUpdate(UpdateOp.DELETE, rel), revision)
            state.head = revision
            return revision, len(doomed)

    async def apply(
        self,
        tenant: str,
        updates: Sequence[RelationshipUpdate],
        deletes: Sequence[RelationshipFilter | WholeResources] = (),
        *,
        preconditions: Sequence[Precondition] = (),
    ) -> tuple[Revision, list[Relationship]]:
        _check_distinct(updates)
        filters = [d for d in deletes if isinstance(d, RelationshipFilter)]
        wholes = [d.matching for d in deletes if isinstance(d, WholeResources)]
        async with self._lock:
            state = self._tenant(tenant)
            self._check_preconditions(state, preconditions)
            rels = [row.rel for row in state.live.values()]
            whole = {rel.resource for rel in rels if any(f.matches(rel) for f in wholes)}
            doomed = sorted(
                (
                    rel
                    for rel in rels
                    if rel.resource in whole or any(f.matches(rel) for f in filters)
                ),
                key=sort_key,
            )
            gone = {rel.key for rel in doomed}
            for update in updates:
                key = update.relationship.key
                if update.op is UpdateOp.CREATE and key in state.live and key not in gone:
                    raise AlreadyExists(
                        f"relationship `{echo(update.relationship)}` already exists"
                    )
            revision = state.head + 1
            # A doomed relationship that an update writes again is replaced, not deleted
            # and created: one TOUCH, as PostgreSQL reports it.
            rewritten = {u.relationship.key for u in updates if u.op is not UpdateOp.DELETE}
            for rel in doomed:
                if rel.key not in rewritten:
                    self._apply(state, RelationshipUpdate(UpdateOp.DELETE, rel), revision)
            for update in updates:
                self._apply(state, update, revision)
            state.head = revision
            return revision, doomed

    def _check_preconditions(self, state: _Tenant, preconditions: Sequence[Precondition]) -> None:
        for index, pre in enumerate(preconditions):
            exists = any(pre.filter.matches(row.rel) for row in state.live.values())
            if exists != pre.must_exist:
                raise pre.failed(index)

    def _apply(self, state: _Tenant, update: RelationshipUpdate, revision: Revision) -> None:
        key = update.relationship.key
        current = state.live.pop(key, None)
        if current is not None:
            current.deleted = revision
        if update.op is UpdateOp.DELETE:
            if current is not None:
                state.changes.append(Change(revision, UpdateOp.DELETE, current.rel))
            return
        row = _Row(update.relationship, revision)
        state.rows.append(row)
        state.live[key] = row
        state.changes.append(Change(revision, UpdateOp.TOUCH, update.relationship))

    async def head_revision(self, tenant: str) -> Revision:
        state = self._tenants.get(tenant)
        return state.head if state else 0

    async def heads(self, tenant: str) -> tuple[Revision, int]:
        return await self.head_revision(tenant), len(self._schemas)

    async def check_revision(self, tenant: str, revision: Revision) -> Revision:
        head = await self.head_revision(tenant)
        if revision > head or revision < 0:
            raise FailedPrecondition(
                f"revision `{echo(revision)}` is unknown in tenant `{echo(tenant)}`"
            )
        return head

    async def changes(self, tenant: str, after: Revision, *, limit: int = 1000) -> list[Change]:
        state = self._tenants.get(tenant)
        if state is None or limit <= 0:
            return []
        pending = [c for c in state.changes if c.revision > after]
        if len(pending) > limit:
            # Never end a page inside a revision: a caller resuming after the last
            # revision it saw would skip the rest of it.
            last = pending[limit - 1].revision
            pending = [c for c in pending if c.revision <= last]
        return sorted(pending, key=lambda c: (c.revision, sort_key(c.relationship)))

    async def changes_page(
        self, tenant: str, after: Revision, *, within: Relationship | None = None, limit: int
    ) -> list[Change]:
        state = self._tenants.get(tenant)
        if state is None or limit <= 0:
            return []
        ordered = sorted(
            (c for c in state.changes if c.revision >= after),
            key=lambda c: (c.revision, sort_key(c.relationship)),
        )
        if within is None:
            past = [c for c in ordered if c.revision > after]
        else:
            start = (after, sort_key(within))
            past = [c for c in ordered if (c.revision, sort_key(c.relationship)) > start]
        return past[:limit]

    async def write_schema(self, version: str, text: str) -> SchemaRecord:
        record = SchemaRecord(version, text, datetime.now(UTC), len(self._schemas) + 1)
        self._schemas.append(record)
        return record

    async def read_schema(self, version: str | None = None) -> SchemaRecord | None:
        if version is None:
            return self._schemas[-1] if self._schemas else None
        return next((s for s in self._schemas if s.version == version), None)

    async def relationship_kinds(self) -> set[RelationshipKind]:
        return {
            RelationshipKind.of(r.rel)
            for state in self._tenants.values()
            for r in state.live.values()
        }

    async def role_grants(self) -> dict[str, tuple[str, str]]:
        # `__role:R#grants@__perm:<type>.<name>` (tenancy/encoding.py)
        found: dict[str, tuple[str, str]] = {}
        for tenant, state in sorted(self._tenants.items()):
            for r in sorted(state.live.values(), key=lambda r: r.rel.resource.id):
                rel = r.rel
                if rel.resource.type == "__role" and rel.relation == "grants":
                    found.setdefault(rel.subject.id, (tenant, rel.resource.id))
        return found

    async def close(self) -> None:
        return None
