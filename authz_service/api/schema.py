"""SchemaService: write (validated, orphan-checked) and read the schema."""

from __future__ import annotations

import time
from datetime import UTC
from typing import Any

import grpc

from authz_service.api.calls import bind_deadline, call_info, unary_rpc
from authz_service.api.gen.authz.v1 import core_pb2, schema_pb2, schema_pb2_grpc
from authz_service.api.tokens import encode_schema_token
from authz_service.errors import NotFound
from authz_service.service import methods
from authz_service.service.audit import AuditTrail
from authz_service.service.schemas import SchemaManager

__all__ = ["SchemaServicer"]

Ctx = grpc.aio.ServicerContext[Any, Any]


class SchemaServicer(schema_pb2_grpc.SchemaServiceServicer):
    def __init__(
        self, schemas: SchemaManager, audit: AuditTrail, *, default_deadline_s: float
    ) -> None:
        self._schemas = schemas
        self._audit = audit
        self._deadline = default_deadline_s

    @unary_rpc
    async def WriteSchema(
        self, request: schema_pb2.WriteSchemaRequest, context: Ctx
    ) -> schema_pb2.WriteSchemaResponse:
        started = time.perf_counter()
        call = call_info(context, self._deadline)  # first: its deadline bounds the write
        written = await self._schemas.write(request.schema, force=request.force)
        await self._audit.admin(
            "_platform",
            call,
            action=methods.WRITE_SCHEMA,
            resource=f"schema:{written.schema.version}",
            revision=0,
            schema_version=written.schema.version,
            details={"force": request.force, "orphaned": list(written.orphaned)},
            started=started,
        )
        return schema_pb2.WriteSchemaResponse(
            schema_version=written.schema.version,
            written_at=core_pb2.ConsistencyToken(token=encode_schema_token(written.seq)),
            orphaned=written.orphaned,
        )

    @unary_rpc
    async def ReadSchema(
        self, request: schema_pb2.ReadSchemaRequest, context: Ctx
    ) -> schema_pb2.ReadSchemaResponse:
        bind_deadline(context, self._deadline)  # bounds its database reads
        current = self._schemas.loaded
        if request.schema_version:
            compiled = await self._schemas.version(request.schema_version)
        elif current is not None:
            compiled = current
        else:
            raise NotFound("no schema has been written yet")
        response = schema_pb2.ReadSchemaResponse(
            schema=compiled.text,
            schema_version=compiled.version,
            current=current is not None and current.version == compiled.version,
        )
        created = await self._schemas.created(compiled.version)
        if created is not None:  # the store keeps every version: None is not expected
            response.create_time.FromDatetime(created.astimezone(UTC))
        return response
