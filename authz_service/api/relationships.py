"""RelationshipsService: write, delete, read (paged stream) and watch relationships."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from authz_service.api import convert, watch_parts
from authz_service.api.calls import bind_deadline, call_info, stream_rpc, unary_rpc
from authz_service.api.context_limits import ContextLimits
from authz_service.api.cursors import CursorScope
from authz_service.api.gen.authz.v1 import relationships_pb2, relationships_pb2_grpc
from authz_service.api.tokens import decode_fresh
from authz_service.errors import InvalidArgument
from authz_service.model import (
    Consistency,
    ConsistencyMode,
    RelationshipFilter,
    RelationshipUpdate,
    ReplayedRevision,
    UpdateOp,
    parse_relationship,
)
from authz_service.service import methods
from authz_service.service.relationships import RelationshipService
from authz_service.store.protocol import Change, Precondition

__all__ = ["RelationshipsServicer"]

Ctx = grpc.aio.ServicerContext[Any, Any]
_PB = relationships_pb2

_OPS = {
    _PB.RelationshipUpdate.OPERATION_CREATE: UpdateOp.CREATE,
    _PB.RelationshipUpdate.OPERATION_TOUCH: UpdateOp.TOUCH,
    _PB.RelationshipUpdate.OPERATION_DELETE: UpdateOp.DELETE,
}
_PAGE = 100


_OPERATIONS = (_PB.Precondition.OPERATION_MUST_MATCH, _PB.Precondition.OPERATION_MUST_NOT_MATCH)


def _preconditions(msgs: Any) -> tuple[Precondition, ...]:
    found = []
    for i, msg in enumerate(msgs):
        if msg.operation not in _OPERATIONS:
            raise InvalidArgument(
                f"`preconditions[{i}].operation` is {msg.operation}: "
                "OPERATION_MUST_MATCH or OPERATION_MUST_NOT_MATCH is required",
                field=f"preconditions[{i}].operation",
                value=msg.operation,
            )
        found.append(
            Precondition(
                convert.relationship_filter(msg.filter, f"preconditions[{i}].filter"),
                must_exist=msg.operation == _PB.Precondition.OPERATION_MUST_MATCH,
            )
        )
    return tuple(found)


class RelationshipsServicer(relationships_pb2_grpc.RelationshipsServiceServicer):
    def __init__(
        self,
        service: RelationshipService,
        *,
        default_deadline_s: float,
        context_limits: ContextLimits = ContextLimits(),  # noqa: B008 - frozen value
    ) -> None:
        self._service = service
        self._deadline = default_deadline_s
        self._limits = context_limits

    @unary_rpc
    async def WriteRelationships(
        self, request: relationships_pb2.WriteRelationshipsRequest, context: Ctx
    ) -> relationships_pb2.WriteRelationshipsResponse:
        tenant = convert.tenant(request.tenant)
        updates = []
        for i, msg in enumerate(request.updates):
            op = _OPS.get(msg.operation)
            if op is None:
                raise InvalidArgument(
                    "update operation must be CREATE, TOUCH or DELETE",
                    field=f"updates[{i}].operation",
                    value=msg.operation,
                )
            rel = convert.relationship(msg.relationship, f"updates[{i}].relationship", self._limits)
            updates.append(RelationshipUpdate(op, rel))
        revision = await self._service.write(
            tenant,
            updates,
            call_info(context, self._deadline),
            preconditions=_preconditions(request.preconditions),
            idempotency_key=request.idempotency_key or None,
        )
        return relationships_pb2.WriteRelationshipsResponse(
            written_at=convert.token(tenant, revision, self._service.schema_seq),
            replayed=isinstance(revision, ReplayedRevision),
        )

    @unary_rpc
    async def DeleteRelationships(
        self, request: relationships_pb2.DeleteRelationshipsRequest, context: Ctx
    ) -> relationships_pb2.DeleteRelationshipsResponse:
        tenant = convert.tenant(request.tenant)
        revision, count = await self._service.delete(
            tenant,
            convert.relationship_filter(request.filter),
            call_info(context, self._deadline),
            preconditions=_preconditions(request.preconditions),
        )
        return relationships_pb2.DeleteRelationshipsResponse(
            deleted_at=convert.token(tenant, revision, self._service.schema_seq),
            deleted_count=count,
        )

    @stream_rpc
    async def ReadRelationships(
        self, request: relationships_pb2.ReadRelationshipsRequest, context: Ctx
    ) -> AsyncIterator[relationships_pb2.ReadRelationshipsResponse]:
        bind_deadline(context, self._deadline)  # the stream as a whole, as for lookups
        tenant = convert.tenant(request.tenant)
        # One of the tenant's slots while the stream is open: a read held open by a
        # slow reader counts against the tenant's share, not only the server's cap.
        with self._service.reading(tenant):
            async for response in self._read(tenant, request):
                yield response

    async def _read(
        self, tenant: str, request: relationships_pb2.ReadRelationshipsRequest
    ) -> AsyncIterator[relationships_pb2.ReadRelationshipsResponse]:
        flt = convert.relationship_filter(request.filter)
        scope = CursorScope.of(methods.READ_RELATIONSHIPS, tenant, request)
        start = scope.resume(request.cursor, request.consistency)
        consistency = start.consistency
        after = None if start.after is None else parse_relationship(start.after, "cursor")
        remaining = request.limit or None
        # Page through the store so a huge result never sits in memory at once; every
        # page reads at the first one's revision, so the stream is one consistent
        # snapshot, and so is a stream resumed from any of its cursors.
        while True:
            page = _PAGE if remaining is None else min(_PAGE, remaining)
            revision, found = await self._service.read(
                tenant, flt, consistency, limit=page, after=after
            )
            consistency = _exact(revision)
            at = convert.token(tenant, revision)
            for rel in found:
                yield relationships_pb2.ReadRelationshipsResponse(
                    relationship=convert.relationship_to_proto(rel),
                    cursor=scope.issue(revision, str(rel)),
                    read_at=at,
                )
            if remaining is not None:
                remaining -= len(found)
            if len(found) < page or remaining == 0:
                return
            after = found[-1]

    @stream_rpc
    async def Watch(
        self, request: relationships_pb2.WatchRequest, context: Ctx
    ) -> AsyncIterator[relationships_pb2.WatchResponse]:
        tenant = convert.tenant(request.tenant)
        filters = [
            convert.relationship_filter(f, f"filters[{i}]") for i, f in enumerate(request.filters)
        ]
        after, schema_seq = None, 0
        if request.HasField("after"):
            after, schema_seq = _watch_after(request.after.token, tenant)
        with self._service.watching(tenant):
            async for response in self._watch(tenant, after, schema_seq, filters, context):
                yield response

    async def _watch(
        self,
        tenant: str,
        after: int | None,
        schema_seq: int,
        filters: list[RelationshipFilter],
        context: Ctx,
    ) -> AsyncIterator[relationships_pb2.WatchResponse]:
        after = await self._service.watch_start(tenant, after, schema_seq)
        # The starting point is fixed: the headers tell the client that every write
        # committed from now on will be streamed.
        await context.send_initial_metadata(())
        sent_through = after  # the last revision a response named as complete
        async for event in self._service.watch(tenant, after):
            if not event.changes:
                # Caught up through `revision`: if what was skipped since the last response
                # matched no filter, an empty response moves the client's resume point on.
                if event.revision > sent_through:
                    sent_through = event.revision
                    yield relationships_pb2.WatchResponse(
                        changes_through=convert.token(tenant, event.revision)
                    )
                continue
            wanted = [
                _change(c)
                for c in event.changes
                if not filters or any(f.matches(c.relationship) for f in filters)
            ]
            if not wanted:
                continue
            # Every part but a revision's last names the revision complete before it, so
            # that a client resuming from any response receives whole revisions.
            resume = convert.token(tenant, sent_through)
            split = list(watch_parts.parts(wanted))
            for i, part in enumerate(split):
                last = event.complete and i == len(split) - 1
                yield relationships_pb2.WatchResponse(
                    changes=part,
                    changes_through=convert.token(tenant, event.revision) if last else resume,
                    partial=not last,
                )
            if event.complete:
                sent_through = event.revision


def _change(change: Change) -> relationships_pb2.RelationshipChange:
    return _PB.RelationshipChange(
        operation=_PB.RelationshipChange.OPERATION_DELETE
        if change.op is UpdateOp.DELETE
        else _PB.RelationshipChange.OPERATION_TOUCH,
        relationship=convert.relationship_to_proto(change.relationship),
    )


def _watch_after(token: str, tenant: str) -> tuple[int, int]:
    """The position a present `after` names. An empty token is refused, not read as an
    unset `after`: that starts at the newest revision, so a client whose stored resume
    token was empty would skip every change before it without a word."""
    if not token:
        raise InvalidArgument(
            "`after.token` is empty: resume from the `changes_through` of a response "
            "received, or leave `after` unset to start at the newest revision",
            field="after",
            value=token,
        )
    return decode_fresh(token, tenant, "after", schema_token=False)


def _exact(revision: int) -> Consistency:
    return Consistency(ConsistencyMode.AT_EXACT_SNAPSHOT, revision)
