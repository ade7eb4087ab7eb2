"""TenantService: the tenant registry over gRPC (service/tenants.py does the work)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import grpc

from authz_service.api import convert
from authz_service.api.calls import bind_deadline, call_info, stream_rpc, unary_rpc
from authz_service.api.cursors import CursorScope
from authz_service.api.gen.authz.v1 import core_pb2, tenants_pb2, tenants_pb2_grpc
from authz_service.errors import InvalidArgument, echo
from authz_service.service import methods
from authz_service.service.pages import page_limit
from authz_service.service.tenants import TenantService
from authz_service.store.registry import TenantRecord, TenantState

__all__ = ["TenantServicer"]

Ctx = grpc.aio.ServicerContext[Any, Any]
_PB = tenants_pb2
# Characters of export per streamed message: well under any client's receive limit.
_CHUNK_CHARS = 1024 * 1024
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_STATES = {
    TenantState.ACTIVE: _PB.TENANT_STATE_ACTIVE,
    TenantState.SUSPENDED: _PB.TENANT_STATE_SUSPENDED,
}


def tenant_to_proto(record: TenantRecord) -> tenants_pb2.Tenant:
    msg = _PB.Tenant(
        name=record.name,
        state=_STATES[record.state],
        head=convert.token(record.name, record.head),
    )
    msg.create_time.FromDatetime(record.created_at.astimezone(UTC))
    msg.update_time.FromDatetime(record.updated_at.astimezone(UTC))
    return msg


def _name(request: Any) -> str:
    return convert.tenant(request.name, "name")


def _reason(value: str) -> str:
    if not value.strip():
        raise InvalidArgument("`reason` is required: say why, for the audit log", field="reason")
    return convert.reason(value)


class TenantServicer(tenants_pb2_grpc.TenantServiceServicer):
    def __init__(self, tenants: TenantService, *, default_deadline_s: float) -> None:
        self._tenants = tenants
        self._deadline = default_deadline_s

    @unary_rpc
    async def CreateTenant(
        self, request: tenants_pb2.CreateTenantRequest, context: Ctx
    ) -> tenants_pb2.CreateTenantResponse:
        name = _name(request)
        call = call_info(context, self._deadline)
        record = await self._tenants.create(name, convert.reason(request.reason), call)
        return _PB.CreateTenantResponse(tenant=tenant_to_proto(record))

    @unary_rpc
    async def GetTenant(
        self, request: tenants_pb2.GetTenantRequest, context: Ctx
    ) -> tenants_pb2.GetTenantResponse:
        bind_deadline(context, self._deadline)  # bounds its database reads
        record = await self._tenants.status(_name(request))
        return _PB.GetTenantResponse(tenant=tenant_to_proto(record))

    @unary_rpc
    async def ListTenants(
        self, request: tenants_pb2.ListTenantsRequest, context: Ctx
    ) -> tenants_pb2.ListTenantsResponse:
        bind_deadline(context, self._deadline)  # bounds its database reads
        # The registry has no revisions: pages continue by name (docs/api.md, Cursors).
        scope = CursorScope.of(methods.LIST_TENANTS, "", request)
        start = scope.resume(request.cursor, core_pb2.Consistency())
        limit = page_limit(request.limit)  # past 1000: INVALID_ARGUMENT, as every page
        found = await self._tenants.list(start.after, limit + 1)
        page = found[:limit]
        response = _PB.ListTenantsResponse(tenants=[tenant_to_proto(t) for t in page])
        if len(found) > limit:
            response.next_cursor.CopyFrom(scope.issue(0, page[-1].name))
        return response

    @unary_rpc
    async def SuspendTenant(
        self, request: tenants_pb2.SuspendTenantRequest, context: Ctx
    ) -> tenants_pb2.SuspendTenantResponse:
        name = _name(request)
        reason = _reason(request.reason)
        revision = await self._tenants.suspend(name, reason, call_info(context, self._deadline))
        return _PB.SuspendTenantResponse(written_at=convert.token(name, revision))

    @unary_rpc
    async def ReactivateTenant(
        self, request: tenants_pb2.ReactivateTenantRequest, context: Ctx
    ) -> tenants_pb2.ReactivateTenantResponse:
        name = _name(request)
        reason = _reason(request.reason)
        call = call_info(context, self._deadline)
        revision = await self._tenants.reactivate(name, reason, call)
        return _PB.ReactivateTenantResponse(written_at=convert.token(name, revision))

    @unary_rpc
    async def DeleteTenant(
        self, request: tenants_pb2.DeleteTenantRequest, context: Ctx
    ) -> tenants_pb2.DeleteTenantResponse:
        name = _name(request)
        reason = _reason(request.reason)
        expected = _digest(request.expected_export_sha256)
        call = call_info(context, self._deadline)
        gone = await self._tenants.delete(name, reason, call, expected_sha256=expected)
        return _PB.DeleteTenantResponse(
            export=gone.export,
            relationship_count=gone.relationships,
            export_sha256=gone.export_sha256,
            revoked_key_ids=list(gone.revoked_keys),
            deleted_at=convert.token(name, gone.revision),
        )

    @stream_rpc
    async def ExportTenant(
        self, request: tenants_pb2.ExportTenantRequest, context: Ctx
    ) -> AsyncIterator[tenants_pb2.ExportTenantResponse]:
        name = _name(request)
        exported = await self._tenants.export(name, call_info(context, self._deadline))
        chunk: list[str] = []
        size = 0
        for line in exported.lines:
            if size + len(line) > _CHUNK_CHARS and chunk:
                yield _PB.ExportTenantResponse(chunk="".join(chunk))
                chunk, size = [], 0
            chunk.append(f"{line}\n")
            size += len(line) + 1
        yield _PB.ExportTenantResponse(
            chunk="".join(chunk),
            relationship_count=len(exported.lines),
            export_sha256=exported.sha256,
            exported_at=convert.token(name, exported.revision),
        )


def _digest(value: str) -> str:
    if value and not _SHA256_HEX.fullmatch(value):
        raise InvalidArgument(
            f"`expected_export_sha256` must be 64 lowercase hex digits, got `{echo(value)}`",
            field="expected_export_sha256",
        )
    return value
