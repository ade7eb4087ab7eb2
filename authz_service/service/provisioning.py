"""SCIM provisioning, free of HTTP: what an identity provider's push does to a tenant.

The SCIM protocol itself (parsing, filters, PATCH, ETags) is scim2-server's, in
`api/scim/`; this service receives whole resources as JSON documents and:

- Users: `active: false` suspends `user:<id>`, `active: true` reactivates it, DELETE
  deprovisions it (through `LifecycleService`, so the effect, its revision and its admin
  record are exactly those of the gRPC lifecycle calls);
- Groups: each member becomes `group:<id>#member@user:<member id>` (a Group member:
  `group:<id>#member@group:<member id>#member`); the added and removed members of one
  push are one relationship write at one revision.

Order, and why a failure converges: the authorization effect is written first, then the
SCIM record. Effects are computed from the stored record and are idempotent (TOUCH,
delete, suspend, reactivate), so if the record write fails the IdP's retry computes the
same effect again and then stores the record. Pushes of a tenant are serialized in the
process, so no other push interleaves between the read of the record and its write; the
record write also checks the version it read. The mapping (types, relation) is global:
`ScimMapping`, from the settings.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from authz_service import deadline
from authz_service.errors import (
    AlreadyExists,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    echo,
)
from authz_service.model import (
    Consistency,
    ConsistencyMode,
    ObjectRef,
    Relationship,
    RelationshipUpdate,
    Revision,
    SubjectRef,
    UpdateOp,
)
from authz_service.revisions import RevisionResolver
from authz_service.service.audit import CallInfo
from authz_service.service.lifecycle import LifecycleService
from authz_service.service.relationships import RelationshipService
from authz_service.store.registry import TenantRegistry, TenantState, not_found, refused
from authz_service.store.scim import ScimRecord, ScimRecords, ScimSync, VersionConflict

__all__ = ["GROUP", "USER", "ProvisioningService", "Pushed", "ScimMapping"]

USER = "User"
GROUP = "Group"
_KEPT_OUT = ("id", "meta", "password")  # the server's own fields; passwords are never kept


@dataclass(frozen=True, slots=True)
class ScimMapping:
    user_type: str = "user"
    group_type: str = "group"
    member_relation: str = "member"


@dataclass(frozen=True, slots=True)
class Pushed:
    record: ScimRecord
    revision: Revision  # the write that applied the push, or the head if it changed nothing


def _document(document: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in _KEPT_OUT and v is not None}


def _unique_name(kind: str, document: Mapping[str, Any]) -> str | None:
    if kind != USER:
        return None
    name = document.get("userName")
    if not isinstance(name, str) or not name:
        raise InvalidArgument("a User needs a userName", field="userName", value=name)
    return name.lower()


def _active(document: Mapping[str, Any]) -> bool:
    return document.get("active") is not False  # absent means active (RFC 7643 leaves it open)


class ProvisioningService:
    def __init__(
        self,
        *,
        records: ScimRecords,
        tenants: TenantRegistry,
        resolver: RevisionResolver,
        lifecycle: LifecycleService,
        relationships: RelationshipService,
        mapping: ScimMapping = ScimMapping(),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._records = records
        self._tenants = tenants
        self._resolver = resolver
        self._lifecycle = lifecycle
        self._relationships = relationships
        self.mapping = mapping
        self._clock = clock
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @asynccontextmanager
    async def _one_push(self, tenant: str) -> AsyncIterator[None]:
        """One push of `tenant` at a time in this process; waiting for the one before is
        bounded by the call's deadline, like its reads and writes."""
        lock = self._locks[tenant]
        try:
            async with asyncio.timeout(deadline.remaining()):
                await lock.acquire()
        except TimeoutError:
            raise DeadlineExceeded(
                f"deadline exceeded waiting for another push of tenant `{echo(tenant)}`"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def subject_of(self, kind: str, resource_id: str) -> SubjectRef:
        """The authorization subject a SCIM resource stands for."""
        if kind == USER:
            return SubjectRef(self.mapping.user_type, resource_id)
        return SubjectRef(self.mapping.group_type, resource_id, self.mapping.member_relation)

    async def get(self, tenant: str, kind: str, resource_id: str) -> ScimRecord:
        await self._require_tenant(tenant, write=False)
        record = await self._records.get(tenant, kind, resource_id)
        if record is None:
            raise NotFound(f"{kind} `{echo(resource_id)}` does not exist")
        return record

    async def list(self, tenant: str, kind: str) -> Sequence[ScimRecord]:
        await self._require_tenant(tenant, write=False)
        return await self._records.list(tenant, kind)

    async def create(
        self, tenant: str, kind: str, document: Mapping[str, Any], call: CallInfo
    ) -> Pushed:
        await self._require_tenant(tenant, write=True)
        async with self._one_push(tenant):
            now = self._clock()
            new = ScimRecord(
                kind,
                uuid.uuid4().hex,
                _unique_name(kind, document),
                _document(document),
                1,
                now,
                now,
            )
            await self._require_unique(tenant, new)
            revision = await self._effect(tenant, None, new, call)
            await self._records.put(tenant, new, None)
            return Pushed(new, revision or await self.head(tenant))

    async def replace(
        self,
        tenant: str,
        kind: str,
        resource_id: str,
        document: Mapping[str, Any],
        expected_version: int | None,
        call: CallInfo,
    ) -> Pushed:
        await self._require_tenant(tenant, write=True)
        async with self._one_push(tenant):
            stored = await self._current(tenant, kind, resource_id, expected_version)
            content = _document(document)
            if content == stored.document:  # the same push again: nothing changes
                return Pushed(stored, await self.head(tenant))
            new = replace(
                stored,
                unique_name=_unique_name(kind, content),
                document=content,
                version=stored.version + 1,
                modified=self._clock(),
            )
            await self._require_unique(tenant, new)
            revision = await self._effect(tenant, stored, new, call)
            await self._records.put(tenant, new, stored.version)
            return Pushed(new, revision or await self.head(tenant))

    async def delete(
        self,
        tenant: str,
        kind: str,
        resource_id: str,
        expected_version: int | None,
        call: CallInfo,
    ) -> Revision:
        await self._require_tenant(tenant, write=True)
        async with self._one_push(tenant):
            stored = await self._current(tenant, kind, resource_id, expected_version)
            revision = await self._effect(tenant, stored, None, call)
            await self._forget_member(tenant, stored, call)
            await self._records.delete(tenant, kind, resource_id, stored.version)
            return revision or await self.head(tenant)

    async def note_push(self, tenant: str, error: str | None) -> None:
        """Record that a push to `tenant` was answered, successfully (`error` None) or
        with `error` (its SCIM detail, capped), in the store, where every process reads it
        (`sync`). Pushes to a tenant that does not exist are not recorded: nothing would
        ever read them, and names in URLs are the caller's."""
        record = await self._tenants.get(tenant)
        if record is None or record.state is TenantState.DELETED:
            return
        await self._records.note_push(tenant, self._clock(), None if error is None else error[:500])

    async def sync(self, tenant: str) -> ScimSync:
        await self._require_tenant(tenant, write=False)
        return await self._records.sync(tenant)

    async def _require_tenant(self, tenant: str, *, write: bool) -> None:
        """The tenant must exist (created with CreateTenant: a misspelled tenant in an
        IdP's URL is NotFound, never a new tenant); a suspended one refuses pushes as it
        refuses every write (docs/tenancy.md), also those that change only the record."""
        record = await self._tenants.get(tenant)
        if record is None:
            raise not_found(tenant)
        if write and record.state is not TenantState.ACTIVE:
            raise refused(tenant, record.state)

    async def _current(
        self, tenant: str, kind: str, resource_id: str, expected_version: int | None
    ) -> ScimRecord:
        stored = await self.get(tenant, kind, resource_id)
        if expected_version is not None and stored.version != expected_version:
            raise VersionConflict(
                f"{kind} `{echo(resource_id)}` is at version {stored.version}, "
                f"not {expected_version}"
            )
        return stored

    async def _require_unique(self, tenant: str, record: ScimRecord) -> None:
        if record.unique_name is None:
            return
        for other in await self._records.list(tenant, record.kind):
            if other.unique_name == record.unique_name and other.resource_id != record.resource_id:
                raise AlreadyExists(
                    f"userName `{echo(record.document.get('userName'))}` is already taken"
                )

    async def head(self, tenant: str) -> Revision:
        """The tenant's newest revision: the token of a push that wrote nothing."""
        return await self._resolver.resolve(tenant, Consistency(ConsistencyMode.FULLY_CONSISTENT))

    async def _effect(
        self, tenant: str, old: ScimRecord | None, new: ScimRecord | None, call: CallInfo
    ) -> Revision | None:
        """Apply what the change from `old` to `new` means for authorization; the
        revision written, or None when it means nothing."""
        current = new or old
        if current is None:
            return None
        if current.kind == GROUP:
            return await self._memberships(tenant, old, new, call)
        user = ObjectRef(self.mapping.user_type, current.resource_id)
        reason = call.reason or "scim"
        if new is None:
            return (await self._lifecycle.deprovision(tenant, user, reason, call)).revision
        was_active = True if old is None else _active(old.document)
        if _active(new.document) == was_active:
            return None
        if _active(new.document):
            return (await self._lifecycle.reactivate(tenant, user, reason, call))[0]
        return (await self._lifecycle.suspend(tenant, user, reason, call))[0]

    async def _memberships(
        self, tenant: str, old: ScimRecord | None, new: ScimRecord | None, call: CallInfo
    ) -> Revision | None:
        current = new or old
        if current is None:
            return None
        before = await self._members(tenant, old, strict=False)
        after = await self._members(tenant, new, strict=True)
        group = ObjectRef(self.mapping.group_type, current.resource_id)
        relation = self.mapping.member_relation
        updates = [
            RelationshipUpdate(UpdateOp.TOUCH, Relationship(group, relation, s))
            for s in sorted(after - before, key=str)
        ] + [
            RelationshipUpdate(UpdateOp.DELETE, Relationship(group, relation, s))
            for s in sorted(before - after, key=str)
        ]
        if not updates:
            return None
        return await self._relationships.write(tenant, updates, call)

    async def members(self, tenant: str, group: ScimRecord) -> set[SubjectRef]:
        """The subjects a stored Group's members stand for (reconciliation)."""
        return await self._members(tenant, group, strict=False)

    async def _members(
        self, tenant: str, record: ScimRecord | None, *, strict: bool
    ) -> set[SubjectRef]:
        """The subjects a Group record's members stand for. In a new record (`strict`) a
        member naming no stored User or Group is refused (the IdP must push it first); in
        the stored one it is taken for a User, so it is still removed."""
        if record is None:
            return set()
        found: set[SubjectRef] = set()
        members = record.document.get("members") or []
        for index, member in enumerate(members):
            value = member.get("value") if isinstance(member, Mapping) else None
            if not isinstance(value, str) or not value:
                raise InvalidArgument(
                    "a member needs a value", field=f"members[{index}].value", value=value
                )
            kinds = [member["type"]] if member.get("type") in (USER, GROUP) else [USER, GROUP]
            for kind in kinds:
                if await self._records.get(tenant, kind, value) is not None:
                    found.add(self.subject_of(kind, value))
                    break
            else:
                if not strict:
                    found.add(self.subject_of(USER, value))
                    continue
                raise InvalidArgument(
                    f"member `{echo(value)}` is no User or Group of this tenant",
                    field=f"members[{index}].value",
                    value=value,
                )
        return found

    async def _forget_member(self, tenant: str, removed: ScimRecord, call: CallInfo) -> None:
        """Drop a deleted resource from the member lists of the Groups holding it. Its
        relationships are gone already: a deleted User's by deprovisioning, a deleted
        Group's with its own memberships below."""
        for group in await self._records.list(tenant, GROUP):
            members = group.document.get("members") or []
            kept = [m for m in members if m.get("value") != removed.resource_id]
            if len(kept) == len(members):
                continue
            document = {**group.document, "members": kept}
            if removed.kind == GROUP:
                shrunk = replace(group, document=document)
                await self._memberships(tenant, group, shrunk, call)
            updated = replace(
                group, document=document, version=group.version + 1, modified=self._clock()
            )
            await self._records.put(tenant, updated, group.version)
