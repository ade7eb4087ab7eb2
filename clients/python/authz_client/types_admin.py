"""Values of the administration calls: tenants, API keys, roles and bindings, subject
status, SCIM sync. Frozen dataclasses; references and relationships in text form.

Enumerations are lowercase strings without their protobuf prefix (`TENANT_STATE_ACTIVE`
is `active`), so results print and compare without importing the generated modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

__all__ = [
    "ApiKey",
    "BindingResult",
    "DeleteRoleResult",
    "DeprovisionResult",
    "GrantReachResult",
    "NewKey",
    "Page",
    "ReachedResource",
    "Role",
    "RoleBinding",
    "RolePermission",
    "RoleResult",
    "ScimDrift",
    "ScimRepair",
    "ScimSync",
    "ScimSyncStatus",
    "StatusChange",
    "SubjectStatus",
    "Tenant",
    "TenantDeletion",
    "TenantExport",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing. Pass `next_cursor` as `cursor=` for the next page; it is
    empty on the last page. `token` is the revision read (empty where none applies)."""

    items: tuple[T, ...]
    next_cursor: str
    token: str = ""


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant; `state` is `active` or `suspended`; `head` its newest revision token."""

    name: str
    state: str
    create_time: datetime | None
    update_time: datetime | None
    head: str


@dataclass(frozen=True, slots=True)
class TenantDeletion:
    """What `delete_tenant` removed: the export (one relationship per line, in the form
    `authz import` reads; empty when the call named `expected_export_sha256`)."""

    export: str
    relationship_count: int
    export_sha256: str
    revoked_key_ids: tuple[str, ...]
    token: str


@dataclass(frozen=True, slots=True)
class TenantExport:
    """A suspended tenant's export, streamed whole (see `export_tenant`)."""

    export: str
    relationship_count: int
    export_sha256: str
    token: str


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's record; never its secret."""

    key_id: str
    tenant: str
    scopes: tuple[str, ...]
    description: str
    create_time: datetime | None
    expire_time: datetime | None
    revoke_time: datetime | None
    last_use_time: datetime | None
    previous_secret_expire_time: datetime | None
    # The service account that owns the key; "" for a key of no account.
    service_account: str = ""


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key created or rotated, with its secret: shown this once, store it now."""

    key: ApiKey
    secret: str


@dataclass(frozen=True, slots=True)
class RolePermission:
    """A permission a role grants on resources of one type."""

    resource_type: str
    permission: str


@dataclass(frozen=True, slots=True)
class Role:
    """A tenant role. `built_in` roles cannot be changed or deleted."""

    name: str
    description: str
    permissions: tuple[RolePermission, ...]
    built_in: bool
    update_time: datetime | None


@dataclass(frozen=True, slots=True)
class RoleResult:
    """A role created or updated, and the revision of the write."""

    role: Role
    token: str


@dataclass(frozen=True, slots=True)
class DeleteRoleResult:
    token: str
    deleted_binding_count: int


@dataclass(frozen=True, slots=True)
class RoleBinding:
    """`role` granted to `subject` on `resource` (empty: tenant-wide)."""

    binding_id: str
    role: str
    subject: str
    resource: str
    create_time: datetime | None


@dataclass(frozen=True, slots=True)
class BindingResult:
    binding: RoleBinding
    token: str


@dataclass(frozen=True, slots=True)
class ReachedResource:
    """A resource a grant reaches, with the permissions it would give there."""

    resource: str
    permissions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GrantReachResult:
    """How far a grant reaches: totals, and one page of the resources."""

    resource_count: int
    permission_count: int
    resources: tuple[ReachedResource, ...]
    next_cursor: str
    token: str


@dataclass(frozen=True, slots=True)
class SubjectStatus:
    """`status` is `active`, `suspended` or `deprovisioned`."""

    status: str
    update_time: datetime | None
    reason: str
    token: str


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A suspend or reactivate: the status before it, and the revision of the write."""

    previous_status: str
    token: str


@dataclass(frozen=True, slots=True)
class DeprovisionResult:
    """A deprovision: what it removed (relationships in text form)."""

    previous_status: str
    removed_relationships: tuple[str, ...]
    removed_bindings: tuple[RoleBinding, ...]
    token: str


@dataclass(frozen=True, slots=True)
class ScimSyncStatus:
    last_push: datetime | None
    last_change: datetime | None
    last_error_time: datetime | None
    last_error: str
    users: int
    active_users: int
    groups: int
    memberships: int


@dataclass(frozen=True, slots=True)
class ScimDrift:
    """Differences between the identity provider's view and the tenant's data."""

    deactivated_upstream: tuple[str, ...]
    inactive_here: tuple[str, ...]
    removed_upstream: tuple[str, ...]
    written_outside: tuple[str, ...]
    missing_here: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ScimSync:
    status: ScimSyncStatus
    drift: ScimDrift
    token: str


@dataclass(frozen=True, slots=True)
class ScimRepair:
    repaired: ScimDrift
    token: str
