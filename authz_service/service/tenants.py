"""Tenants as managed objects, free of gRPC: create, look up, list, suspend, reactivate,
delete (offboard). Also the one question every other part asks: does this tenant exist
(`require`), and is it suspended (`status`, for SCIM and other callers outside the
decision path; decisions read the suspension at their own snapshot, service/gates.py).

`require` keeps tenants it found for the staleness window (AUTHZ_MAX_STALENESS_MS), the
freshness rule of minimize_latency reads, so the check costs no round trip on the hot
path; a tenant not found is asked of the store every time, so a tenant created through
another replica is usable here at once. After DeleteTenant, another replica may accept
reads of the deleted tenant for up to that window (they find nothing: it was purged);
writes are refused by the store itself.

Every change is an administrative record in the decision log, whose `action` is the full
method name and `reason` the reason given.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from authz_service.errors import AlreadyExists
from authz_service.model import RelationshipFilter, Revision
from authz_service.revisions import RevisionResolver
from authz_service.service import methods
from authz_service.service.audit import AuditTrail, CallInfo
from authz_service.service.schemas import SchemaManager
from authz_service.store.protocol import Store
from authz_service.store.registry import TenantRecord, TenantRegistry, TenantState, not_found
from authz_service.tenancy.encoding import TENANT
from authz_service.tenancy.suspension import suspension_update

__all__ = ["Offboarded", "TenantService"]


@dataclass(frozen=True, slots=True)
class Offboarded:
    """What DeleteTenant removed: the export (one relationship per line, internal roles,
    bindings and statuses included, in read order) and the keys it revoked."""

    revision: Revision  # the last revision of the tenant, at which the export was read
    export: str
    relationships: int
    export_sha256: str
    revoked_keys: tuple[str, ...]


class TenantService:
    def __init__(
        self,
        *,
        registry: TenantRegistry,
        store: Store,
        schemas: SchemaManager,
        resolver: RevisionResolver,
        audit: AuditTrail,
        fresh_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._store = store
        self._schemas = schemas
        self._resolver = resolver
        self._audit = audit
        self._fresh_s = fresh_s
        self._clock = clock
        self._known: dict[str, float] = {}  # tenant -> monotonic time it was found

    # --- the directory ---------------------------------------------------------------------

    async def require(self, tenant: str, *, fresh: bool = False) -> None:
        """NotFound unless `tenant` exists (active or suspended). `fresh` asks the store
        even when the tenant was found lately (fully_consistent calls)."""
        found = self._known.get(tenant)
        if found is not None and not fresh and self._clock() - found <= self._fresh_s:
            return
        if await self._registry.get(tenant) is None:
            self._known.pop(tenant, None)
            raise not_found(tenant)
        if len(self._known) >= 100_000:
            self._known.clear()  # a bound, not a policy: entries are refound in one read
        self._known[tenant] = self._clock()

    async def status(self, tenant: str) -> TenantRecord:
        """The tenant as stored now (state, times, head); NotFound if it does not exist."""
        record = await self._registry.get(tenant)
        if record is None:
            raise not_found(tenant)
        return record

    async def list(self, after: str | None, limit: int) -> list[TenantRecord]:
        return await self._registry.list(after, limit)

    # --- changes ---------------------------------------------------------------------------

    async def create(self, tenant: str, reason: str, call: CallInfo) -> TenantRecord:
        started = time.perf_counter()
        record = await self._registry.create(tenant)
        self._known[tenant] = self._clock()
        await self._logged(tenant, call, record.head, started, methods.CREATE_TENANT, reason, {})
        return record

    async def ensure(self, tenant: str, call: CallInfo) -> None:
        """Create `tenant` unless it exists (the demo, `authz import --create-tenant`)."""
        if await self._registry.get(tenant) is None:
            with contextlib.suppress(AlreadyExists):  # created meanwhile elsewhere
                await self.create(tenant, "", call)

    async def suspend(self, tenant: str, reason: str, call: CallInfo) -> Revision:
        return await self._set(tenant, TenantState.SUSPENDED, reason, call)

    async def reactivate(self, tenant: str, reason: str, call: CallInfo) -> Revision:
        return await self._set(tenant, TenantState.ACTIVE, reason, call)

    async def _set(self, tenant: str, state: TenantState, reason: str, call: CallInfo) -> Revision:
        started = time.perf_counter()
        suspended = state is TenantState.SUSPENDED
        update = suspension_update(suspended, reason, datetime.now(UTC))
        revision = await self._registry.set_state(tenant, state, [update])
        action = methods.SUSPEND_TENANT if suspended else methods.REACTIVATE_TENANT
        await self._logged(tenant, call, revision, started, action, reason, {})
        return revision

    async def delete(self, tenant: str, reason: str, call: CallInfo) -> Offboarded:
        """Suspend (so that no write lands between the export and the purge), export
        every live relationship at that revision, purge the tenant, revoke its keys."""
        started = time.perf_counter()
        update = suspension_update(True, reason, datetime.now(UTC))
        revision = await self._registry.set_state(tenant, TenantState.SUSPENDED, [update])
        rows = await self._store.read(tenant, revision, RelationshipFilter())
        marker = update.relationship.key
        lines = [str(r) for r in rows if not (r.resource.type == TENANT and r.key == marker)]
        export = "".join(f"{line}\n" for line in lines)
        digest = hashlib.sha256(export.encode()).hexdigest()
        await self._registry.purge(tenant)
        self._known.pop(tenant, None)
        self._resolver.forget(tenant)
        revoked = []
        for key in await self._store.keys.list(tenant):
            if not key.revoked:
                await self._store.keys.revoke(key.key_id)
                revoked.append(key.key_id)
        details = {
            "relationships": len(lines),
            "export_sha256": digest,
            "revoked_keys": revoked,
        }
        await self._logged(tenant, call, revision, started, methods.DELETE_TENANT, reason, details)
        return Offboarded(revision, export, len(lines), digest, tuple(revoked))

    async def _logged(
        self,
        tenant: str,
        call: CallInfo,
        revision: Revision,
        started: float,
        action: str,
        reason: str,
        details: dict[str, object],
    ) -> None:
        if action != methods.DELETE_TENANT:
            self._resolver.observe(tenant, revision)
        schema = self._schemas.loaded
        await self._audit.admin(
            tenant,
            call,
            action=action,
            resource=f"tenant:{tenant}",
            reason=reason,
            revision=revision,
            schema_version=schema.version if schema is not None else "",
            details=details,
            started=started,
        )
