"""SCIM resources as the identity provider last pushed them (docs/identity.md).

Each tenant keeps its Users and Groups as JSON documents with a version, so that a GET
returns what was pushed and ETags work. They are the IdP's assertions, not authorization
data: the effects of a push (suspension, group memberships) live in the relationship
store and are applied by `service/provisioning.py`. Not revisioned; kept until deleted.

`ScimRecords` is the protocol; `MemoryScimRecords` is the implementation of memory://
servers and tests, `store/postgres/scim.py` the one on PostgreSQL (migration 0007).
Beside them, each tenant's sync status (`ScimSync`: the last push answered and the last
one refused; migration 0009), stored so that every process reports the same one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from authz_service.errors import AlreadyExists, FailedPrecondition, echo

__all__ = ["MemoryScimRecords", "ScimRecord", "ScimRecords", "ScimSync", "VersionConflict"]


class VersionConflict(FailedPrecondition):
    """The stored resource is not at the version the write expected (an If-Match that no
    longer holds, or a concurrent change)."""


@dataclass(frozen=True, slots=True)
class ScimRecord:
    kind: str  # "User" or "Group"
    resource_id: str
    # Unique per (tenant, kind) when set: the lowercased userName of a User (RFC 7643
    # makes userName unique and case-insensitive); None for Groups.
    unique_name: str | None
    document: Mapping[str, Any]  # the resource as pushed, without `id` and `meta`
    version: int
    created: datetime
    modified: datetime


@dataclass(frozen=True, slots=True)
class ScimSync:
    """What the IdP's pushes to a tenant last did, as answered by any process."""

    last_push: datetime | None = None  # the last push answered successfully
    last_error_time: datetime | None = None  # the last push refused ...
    last_error: str = ""  # ... and its SCIM detail


@runtime_checkable
class ScimRecords(Protocol):
    async def get(self, tenant: str, kind: str, resource_id: str) -> ScimRecord | None: ...

    async def list(self, tenant: str, kind: str) -> Sequence[ScimRecord]:
        """Every record of the kind in the tenant, ordered by id."""
        ...

    async def put(self, tenant: str, record: ScimRecord, expected_version: int | None) -> None:
        """Insert (`expected_version` None: the id must be free) or replace the record
        whose stored version is `expected_version`. AlreadyExists when `unique_name` is
        taken by another record of the kind; VersionConflict when the version moved or
        the id is taken."""
        ...

    async def delete(self, tenant: str, kind: str, resource_id: str, expected_version: int) -> None:
        """VersionConflict when the stored version is not `expected_version` (or it is gone)."""
        ...

    async def note_push(self, tenant: str, at: datetime, error: str | None) -> None:
        """Record a push answered at `at`: successfully (`error` None) or refused with
        `error`. A note older than the one stored does not replace it; a note for a
        deleted tenant is not kept (it may arrive after the purge, and a new tenant of
        that name would show it)."""
        ...

    async def sync(self, tenant: str) -> ScimSync:
        """The tenant's sync status (empty when no push was ever answered)."""
        ...


def _conflict(record: ScimRecord | None, kind: str, resource_id: str) -> VersionConflict:
    state = "is gone" if record is None else f"is at version {record.version}"
    return VersionConflict(f"{kind} `{echo(resource_id)}` {state}: it changed meanwhile")


class MemoryScimRecords:
    """Implements `ScimRecords` in dicts, for memory:// servers and tests."""

    def __init__(self, deleted: Callable[[str], bool] = lambda _tenant: False) -> None:
        self._records: dict[tuple[str, str], dict[str, ScimRecord]] = {}
        self._sync: dict[str, ScimSync] = {}
        self._deleted = deleted  # whether a tenant is deleted: its notes are not kept

    async def get(self, tenant: str, kind: str, resource_id: str) -> ScimRecord | None:
        return self._records.get((tenant, kind), {}).get(resource_id)

    async def list(self, tenant: str, kind: str) -> Sequence[ScimRecord]:
        found = self._records.get((tenant, kind), {})
        return [found[k] for k in sorted(found)]

    async def put(self, tenant: str, record: ScimRecord, expected_version: int | None) -> None:
        records = self._records.setdefault((tenant, record.kind), {})
        stored = records.get(record.resource_id)
        if (stored.version if stored else None) != expected_version:
            raise _conflict(stored, record.kind, record.resource_id)
        if record.unique_name is not None:
            for other in records.values():
                if other.unique_name == record.unique_name and other is not stored:
                    raise AlreadyExists(
                        f"{record.kind} name `{echo(record.unique_name)}` is already taken"
                    )
        records[record.resource_id] = replace(record, document=dict(record.document))

    def purge(self, tenant: str) -> None:
        """Forget the tenant's resources (its offboarding, with the rest of its data)."""
        for key in [k for k in self._records if k[0] == tenant]:
            del self._records[key]
        self._sync.pop(tenant, None)

    async def delete(self, tenant: str, kind: str, resource_id: str, expected_version: int) -> None:
        records = self._records.get((tenant, kind), {})
        stored = records.get(resource_id)
        if stored is None or stored.version != expected_version:
            raise _conflict(stored, kind, resource_id)
        del records[resource_id]

    async def note_push(self, tenant: str, at: datetime, error: str | None) -> None:
        if self._deleted(tenant):
            return
        self._sync[tenant] = _noted(self._sync.get(tenant, ScimSync()), at, error)

    async def sync(self, tenant: str) -> ScimSync:
        return self._sync.get(tenant, ScimSync())


def _noted(sync: ScimSync, at: datetime, error: str | None) -> ScimSync:
    if error is None:
        if sync.last_push is not None and sync.last_push >= at:
            return sync
        return replace(sync, last_push=at)
    if sync.last_error_time is not None and sync.last_error_time > at:
        return sync
    return replace(sync, last_error_time=at, last_error=error)
