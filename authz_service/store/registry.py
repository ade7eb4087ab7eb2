"""The tenant registry: which tenants exist and whether they may change (docs/tenancy.md).

A tenant is a row of the registry with a state. `active` tenants take writes;
`suspended` ones refuse them (FailedPrecondition) inside the write's own transaction, so
no write lands after the suspension's revision; a `deleted` tenant has been purged and
answers NotFound until it is created again. The row of a deleted tenant is kept as a
tombstone holding its head, so revisions keep growing if the name is created again and a
decision cached under an old (tenant, revision) key can never be served to the new one.

Whether a decision is denied because the tenant is suspended is data at a revision (a
marker relationship the service writes with `set_state`, see service/tenants.py), like a
subject's status, so replay and cached answers follow the same rules as everything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol, runtime_checkable

from authz_service.errors import FailedPrecondition, NotFound, echo
from authz_service.model import RelationshipUpdate, Revision

__all__ = [
    "TenantRecord",
    "TenantRegistry",
    "TenantState",
    "not_found",
    "refused",
    "require_active",
]


class TenantState(Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class TenantRecord:
    name: str
    state: TenantState
    created_at: datetime
    updated_at: datetime
    head: Revision


def not_found(tenant: str) -> NotFound:
    return NotFound(f"tenant `{echo(tenant)}` does not exist")


def refused(tenant: str, state: TenantState) -> NotFound | FailedPrecondition:
    """The error of a write to a tenant in `state` (not active)."""
    if state is TenantState.DELETED:
        return not_found(tenant)
    return FailedPrecondition(
        f"tenant `{echo(tenant)}` is suspended: writes are refused until it is reactivated",
        field="tenant",
    )


@runtime_checkable
class TenantRegistry(Protocol):
    async def create(self, name: str) -> TenantRecord:
        """Register `name` as active; AlreadyExists if it exists (active or suspended).
        A deleted name is registered again, keeping its head."""
        ...

    async def get(self, name: str) -> TenantRecord | None:
        """The tenant, or None if it does not exist or was deleted."""
        ...

    async def list(self, after: str | None, limit: int) -> list[TenantRecord]:
        """Up to `limit` existing tenants whose names sort after `after`, by name."""
        ...

    async def set_state(
        self, name: str, state: TenantState, updates: Sequence[RelationshipUpdate]
    ) -> Revision:
        """Set an existing tenant's state (ACTIVE or SUSPENDED) and apply `updates`
        atomically at one new revision, whatever the current state; NotFound if the
        tenant does not exist."""
        ...

    async def purge(self, name: str) -> None:
        """Delete every relationship version, revision and idempotency key of the tenant
        and mark it deleted (keeping its head); NotFound if it does not exist."""
        ...


async def require_active(registry: TenantRegistry, tenant: str) -> None:
    """Refuse a change that adds access outside the relationship store (an API key, a
    service account) to a tenant that is not active, as the store refuses writes: a
    suspended tenant takes no new credentials. Revoking and disabling stay possible."""
    record = await registry.get(tenant)
    if record is None:
        raise not_found(tenant)
    if record.state is not TenantState.ACTIVE:
        raise refused(tenant, record.state)
