"""AsyncAuthzClient: the asyncio client (grpc.aio)."""

# ruff: noqa: ASYNC109 -- `timeout` becomes the gRPC deadline, which the server sees and
# budgets its work by; asyncio.timeout around the call could not tell the server anything.

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar

import grpc

from authz_client import _core
from authz_client._core import BulkItem, ClientCore, Operation, RelationshipItem, Resource, Subject
from authz_client._stubs import (
    core_pb2,
    permissions_pb2,
    permissions_pb2_grpc,
    relationships_pb2,
    relationships_pb2_grpc,
    schema_pb2,
    schema_pb2_grpc,
)
from authz_client.retry import Backoff
from authz_client.types import (
    CheckResult,
    Consistency,
    DeleteResult,
    FoundResource,
    FoundSubject,
    PermissionsResult,
    RelationshipFilter,
    SchemaVersion,
    SchemaWriteResult,
    StoredRelationship,
    WriteResult,
)

__all__ = ["AsyncAuthzClient"]

Req = TypeVar("Req")
Resp = TypeVar("Resp")
T = TypeVar("T")
Timeout = float | Literal["default"] | None


class AsyncAuthzClient:
    """Async client of the authorization service.

    `target` is `host:port`. `tenant` is the default for calls that do not name one.
    `api_key` is sent as `authorization: Bearer <key>`. `tls` is False (plaintext), True
    (system roots) or grpc.ChannelCredentials. Calls failing with UNAVAILABLE are retried
    up to `retries` times with exponential backoff from `backoff[0]` to `backoff[1]`
    seconds (or a `Backoff`, which also sets the multiplier), all within one deadline of
    `timeout` seconds per call (None: none). `interceptors` are grpc.aio client interceptors
    (tracing, metrics); each attempt passes through them.

    Read-your-writes: the client remembers the token of its last write in each tenant and
    sends it as `at_least_as_fresh` on later reads in that tenant that give no
    `consistency`. With concurrent writes, "last" means the one that completed last.
    """

    def __init__(
        self,
        target: str,
        *,
        tenant: str | None = None,
        api_key: str | None = None,
        tls: bool | grpc.ChannelCredentials = False,
        retries: int = 3,
        backoff: tuple[float, float] | Backoff = (0.05, 1.0),
        timeout: float | None = 5.0,
        interceptors: Sequence[Any] = (),
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self._core = ClientCore(
            tenant=tenant, api_key=api_key, retries=retries, backoff=backoff, timeout=timeout
        )
        credentials = _core.channel_credentials(tls)
        channel_options = [*_core.CHANNEL_OPTIONS, *options]
        self._channel = (
            grpc.aio.insecure_channel(target, channel_options, interceptors=list(interceptors))
            if credentials is None
            else grpc.aio.secure_channel(
                target, credentials, channel_options, interceptors=list(interceptors)
            )
        )
        self._permissions = permissions_pb2_grpc.PermissionsServiceStub(self._channel)
        self._relationships = relationships_pb2_grpc.RelationshipsServiceStub(self._channel)
        self._schema = schema_pb2_grpc.SchemaServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close(grace=None)

    async def __aenter__(self) -> AsyncAuthzClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def last_token(self, tenant: str | None = None) -> str | None:
        """The token of this client's last write in the tenant, if any."""
        return self._core.last_token(self._core.tenant(tenant))

    # -- permissions ----------------------------------------------------------------------

    async def check(
        self,
        resource: Resource,
        permission: str,
        subject: Subject,
        *,
        tenant: str | None = None,
        context: dict[str, Any] | None = None,
        consistency: Consistency | None = None,
        timeout: Timeout = "default",
    ) -> CheckResult:
        """Decide `permission` for `subject` on `resource`, e.g.
        `await client.check("document:1", "view", "user:alice", tenant="acme")`."""
        tenant = self._core.tenant(tenant)
        request = permissions_pb2.CheckRequest(
            tenant=tenant,
            resource=_core.obj(resource),
            permission=permission,
            subject=_core.subj(subject),
            context=_core.struct(context),
            consistency=self._core.consistency(tenant, consistency),
        )
        response = await self._unary(self._permissions.Check, request, timeout=timeout)
        return _core.check_result(response)

    async def check_bulk(
        self,
        items: Iterable[BulkItem],
        *,
        tenant: str | None = None,
        consistency: Consistency | None = None,
        timeout: Timeout = "default",
    ) -> list[CheckResult]:
        """Decide many (resource, permission, subject) items at one revision, in order.
        An item that could not be decided has `error` set and is not allowed."""
        tenant = self._core.tenant(tenant)
        request = permissions_pb2.CheckBulkRequest(
            tenant=tenant,
            items=_core.bulk_items(items),
            consistency=self._core.consistency(tenant, consistency),
        )
        response = await self._unary(self._permissions.CheckBulk, request, timeout=timeout)
        return _core.bulk_results(response)

    async def list_permissions(
        self,
        resource: Resource,
        subject: Subject,
        *,
        tenant: str | None = None,
        context: dict[str, Any] | None = None,
        consistency: Consistency | None = None,
        timeout: Timeout = "default",
    ) -> PermissionsResult:
        """Every permission of the resource's definition, decided for `subject`."""
        tenant = self._core.tenant(tenant)
        request = permissions_pb2.ListPermissionsRequest(
            tenant=tenant,
            resource=_core.obj(resource),
            subject=_core.subj(subject),
            context=_core.struct(context),
            consistency=self._core.consistency(tenant, consistency),
        )
        response = await self._unary(self._permissions.ListPermissions, request, timeout=timeout)
        return _core.permissions_result(response)

    def lookup_resources(
        self,
        resource_type: str,
        permission: str,
        subject: Subject,
        *,
        tenant: str | None = None,
        context: dict[str, Any] | None = None,
        consistency: Consistency | None = None,
        limit: int = 0,
        timeout: Timeout = "default",
    ) -> AsyncIterator[FoundResource]:
        """Stream the resources of `resource_type` on which `subject` has `permission`."""
        tenant = self._core.tenant(tenant)
        request = permissions_pb2.LookupResourcesRequest(
            tenant=tenant,
            resource_type=resource_type,
            permission=permission,
            subject=_core.subj(subject),
            context=_core.struct(context),
            consistency=self._core.consistency(tenant, consistency),
            limit=limit,
        )
        return self._stream(
            self._permissions.LookupResources, request, _core.found_resource, timeout=timeout
        )

    def lookup_subjects(
        self,
        resource: Resource,
        permission: str,
        subject_type: str,
        *,
        subject_relation: str = "",
        tenant: str | None = None,
        context: dict[str, Any] | None = None,
        consistency: Consistency | None = None,
        limit: int = 0,
        timeout: Timeout = "default",
    ) -> AsyncIterator[FoundSubject]:
        """Stream the subjects of `subject_type` that have `permission` on `resource`."""
        tenant = self._core.tenant(tenant)
        request = permissions_pb2.LookupSubjectsRequest(
            tenant=tenant,
            resource=_core.obj(resource),
            permission=permission,
            subject_type=subject_type,
            subject_relation=subject_relation,
            context=_core.struct(context),
            consistency=self._core.consistency(tenant, consistency),
            limit=limit,
        )
        return self._stream(
            self._permissions.LookupSubjects, request, _core.found_subject, timeout=timeout
        )

    # -- relationships ----------------------------------------------------------------------

    async def write_relationships(
        self,
        relationships: Iterable[RelationshipItem],
        *,
        tenant: str | None = None,
        operation: Operation = "touch",
        preconditions: Sequence[relationships_pb2.Precondition] = (),
        idempotency_key: str | None = None,
        timeout: Timeout = "default",
    ) -> WriteResult:
        """Apply `operation` to every relationship (text forms or messages) atomically.
        A RelationshipUpdate item keeps its own operation. The call carries an
        idempotency key (generated unless given), so retrying it is safe."""
        tenant = self._core.tenant(tenant)
        request = relationships_pb2.WriteRelationshipsRequest(
            tenant=tenant,
            updates=_core.updates(relationships, operation),
            preconditions=preconditions,
            idempotency_key=_core.idempotency_key(idempotency_key),
        )
        response = await self._unary(
            self._relationships.WriteRelationships, request, timeout=timeout
        )
        self._core.remember(tenant, response.written_at.token)
        return WriteResult(response.written_at.token, response.replayed)

    async def delete_relationships(
        self,
        filter: RelationshipFilter,
        *,
        tenant: str | None = None,
        preconditions: Sequence[relationships_pb2.Precondition] = (),
        timeout: Timeout = "default",
    ) -> DeleteResult:
        """Delete every relationship matching `filter` (not empty), atomically.
        Retried on UNAVAILABLE only without preconditions: a retry after a delete that did
        commit would fail a MUST_MATCH precondition it had passed."""
        tenant = self._core.tenant(tenant)
        request = relationships_pb2.DeleteRelationshipsRequest(
            tenant=tenant, filter=filter.to_proto(), preconditions=preconditions
        )
        response = await self._unary(
            self._relationships.DeleteRelationships,
            request,
            timeout=timeout,
            idempotent=not preconditions,
        )
        self._core.remember(tenant, response.deleted_at.token)
        return DeleteResult(response.deleted_at.token, response.deleted_count)

    def read_relationships(
        self,
        filter: RelationshipFilter | None = None,
        *,
        tenant: str | None = None,
        consistency: Consistency | None = None,
        limit: int = 0,
        timeout: Timeout = "default",
    ) -> AsyncIterator[StoredRelationship]:
        """Stream the relationships matching `filter` (None: the whole tenant)."""
        tenant = self._core.tenant(tenant)
        request = relationships_pb2.ReadRelationshipsRequest(
            tenant=tenant,
            filter=(filter or RelationshipFilter()).to_proto(),
            consistency=self._core.consistency(tenant, consistency),
            limit=limit,
        )
        return self._stream(
            self._relationships.ReadRelationships,
            request,
            _core.stored_relationship,
            timeout=timeout,
        )

    # -- schema -----------------------------------------------------------------------------

    async def write_schema(
        self, schema: str, *, force: bool = False, timeout: Timeout = "default"
    ) -> SchemaWriteResult:
        """Validate `schema` and make it current. Writing the same schema again is a no-op,
        so the call is retried like a read."""
        request = schema_pb2.WriteSchemaRequest(schema=schema, force=force)
        response = await self._unary(self._schema.WriteSchema, request, timeout=timeout)
        return SchemaWriteResult(
            response.schema_version, response.written_at.token, tuple(response.orphaned)
        )

    async def read_schema(
        self, schema_version: str = "", *, timeout: Timeout = "default"
    ) -> SchemaVersion:
        """The current schema, or the version named."""
        request = schema_pb2.ReadSchemaRequest(schema_version=schema_version)
        response = await self._unary(self._schema.ReadSchema, request, timeout=timeout)
        return _core.schema_version(response)

    # -- calls with retries -----------------------------------------------------------------

    async def _unary(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        *,
        timeout: Timeout,
        idempotent: bool = True,
    ) -> Resp:
        deadline = self._core.deadline(timeout)
        retry = 0
        while True:
            try:
                return await method(
                    request, timeout=deadline.remaining(), metadata=self._core.metadata
                )
            except grpc.RpcError as exc:
                delay = self._core.retry_delay(exc, retry, idempotent=idempotent, deadline=deadline)
                if delay is None:
                    raise self._core.error(exc) from exc
            retry += 1
            await asyncio.sleep(delay)

    async def _stream(
        self,
        method: grpc.aio.UnaryStreamMultiCallable[Req, Resp],
        request: Req,
        convert: Callable[[Resp], T],
        *,
        timeout: Timeout,
    ) -> AsyncIterator[T]:
        """Stream converted responses; after UNAVAILABLE, resume from the last cursor."""
        deadline = self._core.deadline(timeout)
        limit: int = getattr(request, "limit", 0)
        cursor = core_pb2.Cursor()
        yielded = retry = 0
        while _core.resume(request, cursor, limit, yielded):
            call = method(request, timeout=deadline.remaining(), metadata=self._core.metadata)
            try:
                async for response in call:
                    yield convert(response)
                    yielded += 1
                    cursor = getattr(response, "cursor", cursor)
                return
            except grpc.RpcError as exc:
                delay = self._core.retry_delay(exc, retry, idempotent=True, deadline=deadline)
                if delay is None:
                    raise self._core.error(exc) from exc
            finally:
                call.cancel()  # a consumer that stops early must not leave the call open
            retry += 1
            await asyncio.sleep(delay)
