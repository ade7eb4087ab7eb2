"""The tenant registry of MemoryStore (tests, memory:// servers)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Protocol

from authz_service.errors import AlreadyExists, echo
from authz_service.model import RelationshipUpdate, Revision
from authz_service.store.registry import TenantRecord, TenantState, not_found

__all__ = ["MemoryTenants"]


class _Entry(Protocol):
    @property
    def state(self) -> TenantState: ...

    def record(self, name: str) -> TenantRecord: ...


class _Host(Protocol):
    """What MemoryStore offers its registry (a protocol, so the two modules do not import
    each other)."""

    @property
    def lock(self) -> asyncio.Lock: ...

    def tenant_state(self, tenant: str) -> _Entry | None: ...

    def tenant_states(self) -> Iterator[tuple[str, _Entry]]: ...

    def register(self, tenant: str) -> _Entry: ...

    def apply_as(
        self, tenant: str, status: TenantState, updates: Sequence[RelationshipUpdate]
    ) -> Revision: ...

    def purge(self, tenant: str) -> None: ...


class MemoryTenants:
    """Implements `authz_service.store.registry.TenantRegistry` over a MemoryStore's
    tenants, under its lock."""

    def __init__(self, store: _Host) -> None:
        self._store = store

    async def create(self, name: str) -> TenantRecord:
        async with self._store.lock:
            state = self._store.tenant_state(name)
            if state is not None and state.state is not TenantState.DELETED:
                raise AlreadyExists(f"tenant `{echo(name)}` already exists")
            return self._store.register(name).record(name)

    async def get(self, name: str) -> TenantRecord | None:
        state = self._store.tenant_state(name)
        if state is None or state.state is TenantState.DELETED:
            return None
        return state.record(name)

    async def list(self, after: str | None, limit: int) -> list[TenantRecord]:
        names = sorted(
            name
            for name, state in self._store.tenant_states()
            if state.state is not TenantState.DELETED and (after is None or name > after)
        )
        found = [await self.get(name) for name in names[:limit]]
        return [record for record in found if record is not None]

    async def set_state(
        self, name: str, state: TenantState, updates: Sequence[RelationshipUpdate]
    ) -> Revision:
        async with self._store.lock:
            current = self._store.tenant_state(name)
            if current is None or current.state is TenantState.DELETED:
                raise not_found(name)
            return self._store.apply_as(name, state, updates)

    async def purge(self, name: str) -> None:
        async with self._store.lock:
            current = self._store.tenant_state(name)
            if current is None or current.state is TenantState.DELETED:
                raise not_found(name)
            self._store.purge(name)
