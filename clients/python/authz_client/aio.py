"""AsyncAuthzClient: the asyncio client (grpc.aio)."""

# ruff: noqa: ASYNC109 -- `timeout` becomes the gRPC deadline, which the server sees and
# budgets its work by; asyncio.timeout around the call could not tell the server anything.

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from authz_client import _core, _ops
from authz_client._aio_admin import AsyncAdmin
from authz_client._aio_base import Timeout
from authz_client._core import BulkItem, Operation, RelationshipItem, Resource, Subject
from authz_client._stubs import core_pb2, permissions_pb2, relationships_pb2, schema_pb2
from authz_client.types import (
    CheckResult,
    Consistency,
    DeleteResult,
    ExplainResult,
    FoundResource,
    FoundSubject,
    PermissionsResult,
    RelationshipFilter,
    SchemaVersion,
    SchemaWriteResult,
    StoredRelationship,
    WatchEvent,
    WriteResult,
)

__all__ = ["AsyncAuthzClient"]

Contextual = Sequence[str | core_pb2.Relationship]


class AsyncAuthzClient(AsyncAdmin):
    """Async client of the authorization service.

    `target` is `host:port`. `tenant` is the default for calls that do not name one.
    `api_key` is sent as `authorization: Bearer <key>`. `tls` is False (plaintext), True
    (system roots) or grpc.ChannelCredentials; `tls_ca` (a private CA), `tls_cert` and
    `tls_key` (mTLS) and `tls_server_name` (the name the server's certificate carries)
    take PEM bytes or file paths and turn TLS on. Calls failing with UNAVAILABLE are
    retried up to `retries` times with exponential backoff from `backoff[0]` to
    `backoff[1]` seconds (or a `Backoff`, which also sets the multiplier), all within one
    deadline of `timeout` seconds per call (None: none). `max_batch` is the most items
    per CheckBulk call (the server's AUTHZ_MAX_BATCH); larger batches are split.
    `interceptors` are grpc.aio client interceptors (tracing, metrics); each attempt
    passes through them.

    Read-your-writes: the client remembers the token of its last write in each tenant and
    sends it as `at_least_as_fresh` on later reads in that tenant that give no
    `consistency`. With concurrent writes, "last" means the one that completed last.
    """

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
        actor: Subject | None = None,
        reason: str = "",
        contextual_relationships: Contextual = (),
        agents: Sequence[Subject] = (),
        with_explanation: bool = False,
        timeout: Timeout = "default",
    ) -> CheckResult:
        """Decide `permission` for `subject` on `resource`, e.g.
        `await client.check("document:1", "view", "user:alice", tenant="acme")`.
        `actor` and `reason`: someone acting on the subject's behalf (impersonation);
        `agents`: the delegation chain of service accounts acting for the subject.
        `contextual_relationships`: relationships that hold for this call only."""
        tenant = self._core.tenant(tenant)
        request = permissions_pb2.CheckRequest(
            tenant=tenant,
            resource=_core.obj(resource),
            permission=permission,
            subject=_core.subj(subject),
            context=_core.struct(context),
            consistency=self._core.consistency(tenant, consistency),
            with_explanation=with_explanation,
            actor=_ops.optional_subject(actor),
            reason=reason,
            contextual_relationships=_ops.contextual(contextual_relationships),
            agents=_ops.subjects(agents),
        )
        response = await self._unary(self._permissions.Check, request, timeout=timeout)
        return _core.check_result(response)

    async def check_bulk(
        self,
        items: Iterable[BulkItem],
        *,
        tenant: str | None = None,
        consistency: Consistency | None = None,
        actor: Subject | None = None,
        reason: str = "",
        contextual_relationships: Contextual = (),
        agents: Sequence[Subject] = (),
        with_explanation: bool = False,
        timeout: Timeout = "default",
    ) -> list[CheckResult]:
        """Decide many (resource, permission, subject) items at one revision, in order.
        An item that could not be decided has `error` set and is not allowed. More than
        `max_batch` items are sent in several calls, the later ones at the first one's
        revision (`at_exact_snapshot`), so every result has the same token."""
        tenant = self._core.tenant(tenant)
        request = permissions_pb2.CheckBulkRequest(
            tenant=tenant,
            consistency=self._core.consistency(tenant, consistency),
            with_explanation=with_explanation,
            actor=_ops.optional_subject(actor),
            reason=reason,
            contextual_relationships=_ops.contextual(contextual_relationships),
            agents=_ops.subjects(agents),
        )
        results: list[CheckResult] = []
        for batch in _core.batches(_core.bulk_items(items), self._max_batch):
            part = _core.with_items(request, batch)
            response = await self._unary(self._permissions.CheckBulk, part, timeout=timeout)
            results.extend(_core.bulk_results(response))
            request.consistency.CopyFrom(_core.snapshot(response.checked_at.token))
        return results

    async def list_permissions(
        self,
        resource: Resource,
        subject: Subject,
        *,
        tenant: str | None = None,
        context: dict[str, Any] | None = None,
        consistency: Consistency | None = None,
        contextual_relationships: Contextual = (),
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
            contextual_relationships=_ops.contextual(contextual_relationships),
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

    async def explain(
        self,
        resource: Resource,
        permission: str,
        subject: Subject,
        *,
        tenant: str | None = None,
        context: dict[str, Any] | None = None,
        consistency: Consistency | None = None,
        actor: Subject | None = None,
        reason: str = "",
        contextual_relationships: Contextual = (),
        agents: Sequence[Subject] = (),
        timeout: Timeout = "default",
    ) -> ExplainResult:
        """Decide like `check` and return every evaluation step (`.explanation`)."""
        tenant = self._core.tenant(tenant)
        op = _ops.explain(
            tenant,
            _core.obj(resource),
            permission,
            _core.subj(subject),
            context=_core.struct(context),
            consistency=self._core.consistency(tenant, consistency),
            actor=actor,
            reason=reason,
            contextual_relationships=contextual_relationships,
            agents=agents,
        )
        return await self._run(op, timeout)

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

    def watch(
        self,
        *,
        after: str | None = None,
        filters: Sequence[RelationshipFilter] = (),
        tenant: str | None = None,
        timeout: Timeout = None,
    ) -> AsyncIterator[WatchEvent]:
        """Stream the tenant's relationship changes, one event per revision, committed
        after the token `after` (None: from now on). A revision too large for one
        response comes as several events, all but the last `partial`. After a drop
        (UNAVAILABLE, or the server closing the stream) the client reopens it after the
        last revision it received whole, so no change is missed or repeated, except the
        parts of a revision received before a drop inside it, which come again with the
        rest; it gives up after `retries` consecutive failed attempts. Without `after`,
        a drop before the first event reopens "from now on" and may miss changes made
        meanwhile: pass a token (for example `(await client.get_tenant()).head`) to
        rule that out. No deadline by default: a watch runs until the caller stops
        iterating."""
        request = relationships_pb2.WatchRequest(
            tenant=self._core.tenant(tenant), filters=[f.to_proto() for f in filters]
        )
        if after:
            request.after.token = after
        return self._watch(request, timeout=timeout)

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
