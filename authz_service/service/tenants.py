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

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from authz_service.errors import AlreadyExists, FailedPrecondition, echo
from authz_service.model import RelationshipFilter, Revision
from authz_service.revisions import RevisionResolver
from authz_service.service import methods
from authz_service.service.audit import AuditTrail, CallInfo
from authz_service.service.schemas import SchemaManager
from authz_service.store.protocol import Store
from authz_service.store.registry import TenantRecord, TenantRegistry, TenantState, not_found
from authz_service.tenancy.suspension import MARKER_KEY, suspension_update

__all__ = ["INLINE_EXPORT_LIMIT", "Export", "Offboarded", "TenantService"]


# A DeleteTenant response must arrive: gRPC clients refuse messages over 4 MiB by
# default, and a purged tenant whose export was lost is lost. Larger exports stream
# (ExportTenant) and the delete names their digest.
INLINE_EXPORT_LIMIT = 3 * 1024 * 1024
# Relationships per read of an export. Each read, and the lines made of it, is one step
# between turns for other requests: read, sorted and hashed in one piece, the export of
# 200,000 relationships held the event loop for 2-3.8 s.
_EXPORT_PAGE = 2_000
_EVERYTHING = RelationshipFilter()


@dataclass(frozen=True, slots=True)
class Export:
    """Every live relationship of a tenant at one revision, one per line in sorted order
    (internal roles, bindings and statuses included; the suspension marker left out)."""

    revision: Revision
    lines: list[str]
    sha256: str
    size: int  # bytes of the export's UTF-8 text

    @property
    def text(self) -> str:
        return "".join(f"{line}\n" for line in self.lines)


@dataclass(frozen=True, slots=True)
class Offboarded:
    """What DeleteTenant removed: the export (empty when the caller held it already) and
    the keys it revoked."""

    revision: Revision  # the last revision of the tenant, at which the export was read
    export: str
    relationships: int
    export_sha256: str
    revoked_keys: tuple[str, ...]


class PurgeSource(Protocol):
    def on_purge(self, callback: Callable[[str], None]) -> None:
        """Call `callback(tenant)` when any process of the service purges a tenant."""
        ...


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
        purges: PurgeSource | None = None,
    ) -> None:
        """`purges` tells of tenants other processes purged (the revision tracker)."""
        self._registry = registry
        self._store = store
        self._schemas = schemas
        self._resolver = resolver
        self._audit = audit
        self._fresh_s = fresh_s
        self._clock = clock
        self._known: dict[str, float] = {}  # tenant -> monotonic time it was found
        if purges is not None:
            purges.on_purge(self.forget)

    # --- the directory ---------------------------------------------------------------------

    def found_lately(self, tenant: str) -> bool:
        """True if `tenant` was found within the staleness window: `require` would
        return without reading the store. A dict read, for the per-call fast path."""
        found = self._known.get(tenant)
        return found is not None and self._clock() - found <= self._fresh_s

    def forget(self, tenant: str) -> None:
        """Another process purged `tenant`: nothing pinned or found of the old tenant
        may answer for it, or for a tenant created again under its name."""
        self._known.pop(tenant, None)
        self._resolver.forget(tenant)

    async def require(self, tenant: str, *, fresh: bool = False) -> None:
        """NotFound unless `tenant` exists (active or suspended). `fresh` asks the store
        even when the tenant was found lately (fully_consistent calls)."""
        if not fresh and self.found_lately(tenant):
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

    async def export(self, tenant: str, call: CallInfo) -> Export:
        """The export of a suspended tenant (so it cannot change before a delete)."""
        started = time.perf_counter()
        record = await self.status(tenant)
        if record.state is not TenantState.SUSPENDED:
            raise FailedPrecondition(
                f"tenant `{tenant}` is active: suspend it first (SuspendTenant), so that "
                "the export cannot change before it is deleted",
                field="name",
            )
        exported = await self._export(tenant, record.head)
        details: dict[str, object] = {
            "relationships": len(exported.lines),
            "export_sha256": exported.sha256,
        }
        await self._logged(
            tenant, call, record.head, started, methods.EXPORT_TENANT, "export", details
        )
        return exported

    async def delete(
        self, tenant: str, reason: str, call: CallInfo, *, expected_sha256: str = ""
    ) -> Offboarded:
        """Suspend (so that no write lands between the export and the purge), export
        every live relationship at that revision, purge the tenant, revoke its keys.
        Purges nothing unless the export is returned inline or the caller holds it."""
        started = time.perf_counter()
        update = suspension_update(True, reason, datetime.now(UTC))
        revision = await self._registry.set_state(tenant, TenantState.SUSPENDED, [update])
        found: Export | None
        if expected_sha256:
            found = await self._export(tenant, revision)
        else:  # returned inline, or refused: nothing past the limit needs reading
            found = await self._inline_export(tenant, revision)
        outcome = _purgeable(tenant, found, expected_sha256)
        if isinstance(outcome, FailedPrecondition):
            # The suspension stands (the first step of offboarding) and is recorded.
            step: dict[str, object] = {"step_of": methods.DELETE_TENANT, "refused": outcome.message}
            await self._logged(
                tenant, call, revision, started, methods.SUSPEND_TENANT, reason, step
            )
            raise outcome
        exported = outcome
        await self._registry.purge(tenant)
        self._known.pop(tenant, None)
        self._resolver.forget(tenant)
        revoked = []
        for key in await self._store.keys.list(tenant):
            if not key.revoked:
                await self._store.keys.revoke(key.key_id)
                revoked.append(key.key_id)
        count = len(exported.lines)
        details: dict[str, object] = {
            "relationships": count,
            "export_sha256": exported.sha256,
            "revoked_keys": revoked,
        }
        await self._logged(tenant, call, revision, started, methods.DELETE_TENANT, reason, details)
        text = "" if expected_sha256 else exported.text
        return Offboarded(revision, text, count, exported.sha256, tuple(revoked))

    async def _export(self, tenant: str, revision: Revision) -> Export:
        return await _export_of(revision, [line async for line in self._lines(tenant, revision)])

    async def _inline_export(self, tenant: str, revision: Revision) -> Export | None:
        """`_export`, or None as soon as it is known to be more than INLINE_EXPORT_LIMIT
        bytes (the rest is not read)."""
        lines: list[str] = []
        size = 0
        async with contextlib.aclosing(self._lines(tenant, revision)) as found:
            async for line in found:
                lines.append(line)
                size += len(line.encode()) + 1  # and its newline
                if size > INLINE_EXPORT_LIMIT:
                    return None
        return await _export_of(revision, lines)

    async def _lines(self, tenant: str, revision: Revision) -> AsyncGenerator[str, None]:
        """The export's lines in the store's order, read in pages with a turn for other
        requests between them."""
        after = None
        while True:
            page = await self._store.read(
                tenant, revision, _EVERYTHING, limit=_EXPORT_PAGE, after=after
            )
            for rel in page:
                if rel.key != MARKER_KEY:
                    yield str(rel)
            if len(page) < _EXPORT_PAGE:
                return
            after = page[-1]
            await asyncio.sleep(0)  # the memory store's reads never wait

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


async def _export_of(revision: Revision, lines: list[str]) -> Export:
    """The export of `lines` (in the store's order), hashed a page at a time."""
    # The store's order is by columns, the export's by text (`a/b:` before `a:`): the
    # lines come nearly sorted, which the sort runs through in about linear time.
    lines.sort()
    digest = hashlib.sha256()
    size = 0
    for start in range(0, len(lines), _EXPORT_PAGE):
        await asyncio.sleep(0)
        raw = "".join(f"{line}\n" for line in lines[start : start + _EXPORT_PAGE]).encode()
        digest.update(raw)
        size += len(raw)
    return Export(revision, lines, digest.hexdigest(), size)


def _purgeable(
    tenant: str, exported: Export | None, expected_sha256: str
) -> Export | FailedPrecondition:
    """The export a delete may purge with, or why it may not: a digest that is not the
    export's, or an export too large to return (None: read only as far as that)."""
    if exported is None:
        return FailedPrecondition(
            f"tenant `{tenant}`'s export is more than the {INLINE_EXPORT_LIMIT} bytes "
            "DeleteTenant returns: it is suspended and nothing was purged; stream the "
            "export with ExportTenant, then call DeleteTenant with its "
            "`expected_export_sha256`",
            field="expected_export_sha256",
        )
    if expected_sha256 and expected_sha256 != exported.sha256:
        return FailedPrecondition(
            f"tenant `{tenant}`'s export has SHA-256 {exported.sha256}, not the "
            f"`expected_export_sha256` {echo(expected_sha256)}: export it again "
            "(ExportTenant)",
            field="expected_export_sha256",
        )
    return exported
