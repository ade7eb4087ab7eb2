"""Storage protocols. The engine and the services depend on these, never on a backend.

Every read takes an explicit revision; every write returns the new revision. Revisions
are per tenant and commit-ordered. Rows are never updated in place: each carries the
revision that created it and the one that deleted it, so any revision inside the
retention window reads exactly as it was (replay depends on this).

Every implementation (memory, postgres) passes the one contract suite in
tests/store/test_contract.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from authz_service.credentials import ApiKey
from authz_service.errors import PreconditionUnmet
from authz_service.model import (
    Relationship,
    RelationshipFilter,
    RelationshipKind,
    RelationshipUpdate,
    Revision,
    UpdateOp,
)
from authz_service.store.registry import TenantRegistry
from authz_service.store.scim import ScimRecords
from authz_service.store.service_accounts import ServiceAccounts

__all__ = [
    "Change",
    "KeyStore",
    "Precondition",
    "RelationshipReader",
    "RelationshipWriter",
    "RevisionSource",
    "SchemaRecord",
    "SchemaStore",
    "Store",
    "WholeResources",
]


@dataclass(frozen=True, slots=True)
class Precondition:
    """A write proceeds only if `filter` matches at least one live relationship
    (`must_exist=True`) or none (`must_exist=False`), evaluated inside the write."""

    filter: RelationshipFilter
    must_exist: bool = True

    def failed(self, index: int) -> PreconditionUnmet:
        """The error when this, the call's `index`-th precondition, does not hold."""
        wanted = "some relationship" if self.must_exist else "no relationship"
        return PreconditionUnmet(
            f"`preconditions[{index}]` failed: {wanted} must match its filter",
            field=f"preconditions[{index}]",
        )


@dataclass(frozen=True, slots=True)
class WholeResources:
    """One of `apply`'s deletes: every relationship of each resource of which `matching`
    selects a live relationship (every row of each binding of a role). The resources are
    found inside the write, so one that a writer committed just before goes whole too."""

    matching: RelationshipFilter


@dataclass(frozen=True, slots=True)
class Change:
    """One relationship change, as delivered by Watch."""

    revision: Revision
    op: UpdateOp  # TOUCH (created or replaced) or DELETE
    relationship: Relationship


@dataclass(frozen=True, slots=True)
class SchemaRecord:
    version: str
    text: str
    created_at: datetime
    seq: int
    """Order of writes: every write gets a higher number, even one that restores an older
    version. Consistency tokens carry it, so a reader can tell its schema is too old."""


@runtime_checkable
class RelationshipReader(Protocol):
    async def read(
        self,
        tenant: str,
        revision: Revision,
        flt: RelationshipFilter,
        *,
        limit: int | None = None,
        after: Relationship | None = None,
    ) -> list[Relationship]:
        """Live relationships at `revision` matching `flt`, ordered by
        (resource type, resource id, relation, subject type, subject id, subject relation).
        `after` continues a page strictly after that relationship's key. Expired
        relationships ARE returned: expiry is judged by the engine against the request's
        evaluation time, so that replay sees what the original decision saw."""
        ...


@runtime_checkable
class RelationshipWriter(Protocol):
    async def write(
        self,
        tenant: str,
        updates: Sequence[RelationshipUpdate],
        *,
        preconditions: Sequence[Precondition] = (),
        idempotency_key: str | None = None,
    ) -> Revision:
        """Apply all updates atomically at one new revision.

        CREATE of a live relationship raises AlreadyExists; TOUCH creates or replaces
        (caveat, expiration); DELETE of an absent relationship is a no-op. A failed
        precondition raises PreconditionUnmet and writes nothing. Repeating a call
        with the same `idempotency_key` and the same request (`store.idempotency`)
        returns the first call's revision as a ReplayedRevision and writes nothing new;
        the same key with another request raises FailedPrecondition. Two updates of the same relationship in one call are InvalidArgument.
        """
        ...

    async def delete(
        self,
        tenant: str,
        flt: RelationshipFilter,
        *,
        preconditions: Sequence[Precondition] = (),
    ) -> tuple[Revision, int]:
        """Delete every live relationship matching `flt` at one new revision; returns
        (revision, number deleted)."""
        ...

    async def apply(
        self,
        tenant: str,
        updates: Sequence[RelationshipUpdate],
        deletes: Sequence[RelationshipFilter | WholeResources] = (),
        *,
        preconditions: Sequence[Precondition] = (),
    ) -> tuple[Revision, list[Relationship]]:
        """Delete every live relationship matching any of `deletes`, then apply `updates`,
        atomically at one new revision; returns (revision, the relationships deleted by
        the filters, in read order).

        Preconditions and every filter see the state before the call (the order of
        `deletes` does not matter). An update of a relationship that a filter deletes is
        applied after the delete (a CREATE then succeeds; Watch reports the pair as one
        TOUCH). Otherwise updates behave as in `write`. Used where one decision must
        remove "everything matching" and record a fact in the same transaction
        (deprovisioning a subject, deleting a role with its bindings; bindings go by
        `WholeResources`, so that none is left in part).
        """
        ...


@runtime_checkable
class RevisionSource(Protocol):
    async def head_revision(self, tenant: str) -> Revision:
        """The newest committed revision of `tenant` (0 if it never wrote)."""
        ...

    async def heads(self, tenant: str) -> tuple[Revision, int]:
        """The tenant's head revision and the `seq` of the current schema (0 if none),
        read in one round trip: what a fully consistent read needs."""
        ...

    async def check_revision(self, tenant: str, revision: Revision) -> Revision:
        """Raise FailedPrecondition if `revision` is newer than the head or older than
        the retention window (its history may have been collected); else return the
        head, read in the same statement."""
        ...

    async def changes(self, tenant: str, after: Revision, *, limit: int = 1000) -> list[Change]:
        """Changes with revision > `after`, ordered by (revision, key), in whole revisions
        only: a page never ends inside a revision, so resuming after the last revision
        seen skips nothing (the relationship index). A single revision larger than `limit`
        is returned whole."""
        ...

    async def changes_page(
        self, tenant: str, after: Revision, *, within: Relationship | None = None, limit: int
    ) -> list[Change]:
        """At most `limit` changes after the position (`after`, `within`), ordered by
        (revision, key). Without `within`, the changes of the revisions after `after`;
        with it, first the rest of revision `after` (the changes whose relationship
        sorts after `within`), then the later revisions. Unlike `changes`, a page may
        end inside a revision: Watch reads a revision of any size a page at a time and
        continues from the last change's revision and relationship."""
        ...


@runtime_checkable
class SchemaStore(Protocol):
    """The schema is the product's model: one for all tenants, every version kept."""

    async def write_schema(self, version: str, text: str) -> SchemaRecord: ...

    async def read_schema(self, version: str | None = None) -> SchemaRecord | None:
        """The current schema (the latest write) when `version` is None; else the first
        write of that version, so its `created_at` is when the version first appeared
        (ReadSchema's `create_time`), even if it was written again later."""
        ...

    async def relationship_kinds(self) -> set[RelationshipKind]:
        """The kind of every live (undeleted, expired or not) relationship in any tenant;
        WriteSchema uses it to refuse orphaning changes."""
        ...

    async def role_grants(self) -> dict[str, tuple[str, str]]:
        """Every `type.name` a live custom role grants, in any tenant, with one (tenant,
        role) that grants it; WriteSchema uses it to refuse orphaning changes."""
        ...


@runtime_checkable
class KeyStore(Protocol):
    """API keys (docs/auth.md): platform state, not tenant data, so not revisioned.

    Only the digest of a key's secret is stored. Keys are never deleted: a revoked key
    keeps its record (and its id in old decision-log records keeps meaning something).
    """

    async def create(self, key: ApiKey) -> ApiKey:
        """Store a new key and return it as stored (`created_at` may be set by the
        store's clock); AlreadyExists if its id is taken."""
        ...

    async def get(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked or not; None if there is none."""
        ...

    async def list(self, tenant: str | None = None) -> Sequence[ApiKey]:
        """Keys bound to `tenant` (`*` for platform keys), or all keys when None;
        ordered by creation time, then id. Revoked keys are included."""
        ...

    async def revoke(self, key_id: str) -> ApiKey:
        """Mark the key revoked now and return it; NotFound if there is none. Revoking
        a revoked key changes nothing and returns it with its first revocation time."""
        ...

    async def page(self, tenant: str | None, after: str, limit: int) -> Sequence[ApiKey]:
        """Up to `limit` keys (of `tenant`, or all when None) with ids after `after`,
        ordered by key id: one page of a listing."""
        ...

    async def rotate(self, key_id: str, secret_hash: bytes, overlap: timedelta) -> ApiKey:
        """Give the key a new secret digest; the replaced one keeps working for
        `overlap` from now (the store's clock). NotFound if there is no such key,
        FailedPrecondition if it is revoked or expired."""
        ...

    async def touch(self, used: Mapping[str, datetime]) -> None:
        """Record last-use times (key id -> time), never moving one backwards; unknown
        ids are ignored. One round trip for the whole batch."""
        ...


class Store(RelationshipReader, RelationshipWriter, RevisionSource, SchemaStore, Protocol):
    """Everything a server needs from one backend."""

    @property
    def keys(self) -> KeyStore:
        """API keys, kept apart from tenant data and its revisions."""
        ...

    @property
    def tenants(self) -> TenantRegistry:
        """Which tenants exist and their state (store/registry.py)."""
        ...

    @property
    def scim(self) -> ScimRecords:
        """SCIM resources as each tenant's identity provider pushed them (not revisioned)."""
        ...

    @property
    def service_accounts(self) -> ServiceAccounts:
        """Each tenant's service accounts (not revisioned; store/service_accounts.py)."""
        ...

    async def close(self) -> None: ...
