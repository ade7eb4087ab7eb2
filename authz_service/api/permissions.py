"""PermissionsService: Check, CheckBulk, ListPermissions, lookups and Explain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from authz_service.api import bulk, convert
from authz_service.api.calls import call_info, hot_unary_rpc, stream_rpc, unary_rpc
from authz_service.api.context_limits import ContextLimits
from authz_service.api.cursors import CursorScope
from authz_service.api.explain import explanation_to_proto
from authz_service.api.gen.authz.v1 import permissions_pb2, permissions_pb2_grpc
from authz_service.engine import CheckItem, CheckResult
from authz_service.engine.explain_layout import DEFAULT_MAX_EXPLANATION_NODES
from authz_service.errors import AuthzError, InvalidArgument, echo
from authz_service.model import Relationship, SubjectRef, validate_type_name
from authz_service.service import methods
from authz_service.service.audit import CallInfo
from authz_service.service.bulk_items import PlainItem
from authz_service.service.permissions import PermissionService

__all__ = ["PermissionsServicer"]

Ctx = grpc.aio.ServicerContext[Any, Any]


def _contextual(msgs: Any, field: str, limits: ContextLimits) -> tuple[Relationship, ...]:
    if not msgs:
        return ()
    return tuple(convert.relationship(m, f"{field}[{i}]", limits) for i, m in enumerate(msgs))


def _limit(value: int, field: str = "limit") -> int | None:
    if value > 10_000:
        raise InvalidArgument(f"limit `{echo(value)}` exceeds 10000", field=field, value=value)
    return value or None


class PermissionsServicer(permissions_pb2_grpc.PermissionsServiceServicer):
    def __init__(
        self,
        service: PermissionService,
        *,
        default_deadline_s: float,
        max_explanation_nodes: int = DEFAULT_MAX_EXPLANATION_NODES,
        context_limits: ContextLimits = ContextLimits(),  # noqa: B008 - frozen value
    ) -> None:
        self._service = service
        self._deadline = default_deadline_s
        self._max_nodes = max_explanation_nodes
        self._limits = context_limits
        self._known = bulk.KnownItems()  # CheckBulk's items of recent calls

    def _item(self, request: Any, prefix: str = "") -> CheckItem:
        plain = convert.plain_check_item(request)
        if plain is not None:
            return plain
        if not request.permission:
            raise InvalidArgument("permission is required", field=f"{prefix}permission")
        return CheckItem(
            resource=convert.object_ref(request.resource, f"{prefix}resource"),
            permission=request.permission,
            subject=convert.subject_ref(request.subject, f"{prefix}subject"),
            context=convert.context(request.context, f"{prefix}context", self._limits),
        )

    def _items(self, msgs: Sequence[Any], refused: dict[int, AuthzError]) -> list[CheckItem]:
        """CheckBulk's items one by one. Items fail independently (permissions.proto): one
        that cannot be read goes into `refused` at its position, with field paths relative
        to the item, as a Check of it alone would have been refused."""
        items = []
        for i, msg in enumerate(msgs):
            try:
                items.append(self._item(msg))
            except AuthzError as exc:  # bad input, or a context over its limits
                refused[i] = exc
        return items

    def _call(
        self,
        context: Ctx,
        request: Any,
        actor: SubjectRef | None,
        agents: tuple[SubjectRef, ...],
    ) -> CallInfo:
        # A delegated decision is recorded with its last agent as the actor (the one
        # really acting, as for impersonation) and the whole chain in `details.agents`.
        acting = actor if actor is not None else (agents[-1] if agents else None)
        return call_info(
            context,
            self._deadline,
            actor=str(acting) if acting else None,
            reason=convert.reason(request.reason) or None,
            agents=tuple(str(a) for a in agents),
        )

    def _contextual(self, request: Any) -> tuple[Relationship, ...]:
        field = "contextual_relationships"
        return _contextual(request.contextual_relationships, field, self._limits)

    @hot_unary_rpc
    async def Check(
        self, request: permissions_pb2.CheckRequest, context: Ctx
    ) -> permissions_pb2.CheckResponse:
        tenant = convert.tenant(request.tenant)
        item = self._item(request)
        actor, agents = _who(request)
        call = self._call(context, request, actor, agents)
        contextual = self._contextual(request)
        outcome = await self._service.check(
            tenant,
            item,
            convert.consistency(request.consistency, tenant),
            call,
            explain=request.with_explanation,
            contextual=contextual,
            actor=actor,
            agents=agents,
        )
        response = permissions_pb2.CheckResponse(
            decision=convert.decision_to_proto(outcome.result.decision),
            missing_context=outcome.result.missing_context,
            checked_at=convert.token(tenant, outcome.revision),
            decision_id=outcome.decision_id,
            subject=request.subject,
            reason=request.reason,
        )
        if actor is not None:
            response.actor.CopyFrom(request.actor)
        response.agents.extend(request.agents)
        if outcome.result.explanation is not None:
            response.explanation.CopyFrom(
                explanation_to_proto(outcome.result, self._max_nodes, contextual)
            )
        return response

    @hot_unary_rpc
    async def CheckBulk(
        self, request: permissions_pb2.CheckBulkRequest, context: Ctx
    ) -> permissions_pb2.CheckBulkResponse:
        tenant = convert.tenant(request.tenant)
        plain = self._known.convert(request.items)
        refused: dict[int, AuthzError] = {}
        items: Sequence[CheckItem | PlainItem] = (
            plain if plain is not None else self._items(request.items, refused)
        )
        actor, agents = _who(request)
        call = self._call(context, request, actor, agents)
        contextual = self._contextual(request)
        revision, results, ids = await self._service.check_bulk(
            tenant,
            items,
            convert.consistency(request.consistency, tenant),
            call,
            explain=request.with_explanation,
            contextual=contextual,
            actor=actor,
            agents=agents,
            refused=refused,
        )
        return bulk.response(
            results,
            ids,
            convert.token(tenant, revision),
            lambda result: explanation_to_proto(result, self._max_nodes, contextual),
        )

    @unary_rpc
    async def ListPermissions(
        self, request: permissions_pb2.ListPermissionsRequest, context: Ctx
    ) -> permissions_pb2.ListPermissionsResponse:
        tenant = convert.tenant(request.tenant)
        outcome = await self._service.list_permissions(
            tenant,
            convert.object_ref(request.resource, "resource"),
            convert.subject_ref(request.subject, "subject"),
            convert.context(request.context, "context", self._limits),
            convert.consistency(request.consistency, tenant),
            call_info(context, self._deadline),
            contextual=self._contextual(request),
        )
        return permissions_pb2.ListPermissionsResponse(
            permissions=[
                permissions_pb2.PermissionDecision(
                    permission=name,
                    decision=convert.decision_to_proto(result.decision),
                    missing_context=result.missing_context,
                )
                for name, result in outcome.permissions
            ],
            checked_at=convert.token(tenant, outcome.revision),
            decision_id=outcome.decision_id,
        )

    @stream_rpc
    async def LookupResources(
        self, request: permissions_pb2.LookupResourcesRequest, context: Ctx
    ) -> AsyncIterator[permissions_pb2.LookupResourcesResponse]:
        tenant = convert.tenant(request.tenant)
        scope = CursorScope.of(methods.LOOKUP_RESOURCES, tenant, request)
        start = scope.resume(request.cursor, request.consistency)
        revision, stream = await self._service.lookup_resources(
            tenant,
            validate_type_name(request.resource_type, "resource_type"),
            request.permission,
            convert.subject_ref(request.subject, "subject"),
            convert.context(request.context, "context", self._limits),
            start.consistency,
            call_info(context, self._deadline),
            after=start.after,
            limit=_limit(request.limit),
        )
        at = convert.token(tenant, revision)
        stamp = scope.stamper(revision)
        async for found in stream:
            yield permissions_pb2.LookupResourcesResponse(
                resource_id=found.resource_id,
                decision=convert.decision_to_proto(found.decision),
                missing_context=found.missing_context,
                cursor=stamp(found.resource_id),
                looked_up_at=at,
            )

    @stream_rpc
    async def LookupSubjects(
        self, request: permissions_pb2.LookupSubjectsRequest, context: Ctx
    ) -> AsyncIterator[permissions_pb2.LookupSubjectsResponse]:
        tenant = convert.tenant(request.tenant)
        scope = CursorScope.of(methods.LOOKUP_SUBJECTS, tenant, request)
        start = scope.resume(request.cursor, request.consistency)
        revision, stream = await self._service.lookup_subjects(
            tenant,
            convert.object_ref(request.resource, "resource"),
            request.permission,
            validate_type_name(request.subject_type, "subject_type"),
            "" if request.subject_relation == "..." else request.subject_relation,
            convert.context(request.context, "context", self._limits),
            start.consistency,
            call_info(context, self._deadline),
            after=start.after,
            limit=_limit(request.limit),
        )
        at = convert.token(tenant, revision)
        stamp = scope.stamper(revision)
        async for found in stream:
            yield permissions_pb2.LookupSubjectsResponse(
                subject_id=found.subject_id,
                decision=convert.decision_to_proto(found.decision),
                missing_context=found.missing_context,
                excluded_subject_ids=found.excluded_subject_ids,
                excluded_subjects=[
                    permissions_pb2.ExcludedSubject(
                        subject_id=e.subject_id,
                        decision=convert.decision_to_proto(e.decision),
                        missing_context=e.missing_context,
                    )
                    for e in found.excluded_subjects
                ],
                cursor=stamp(found.subject_id),
                looked_up_at=at,
            )

    @unary_rpc
    async def Explain(
        self, request: permissions_pb2.ExplainRequest, context: Ctx
    ) -> permissions_pb2.ExplainResponse:
        tenant = convert.tenant(request.tenant)
        actor, agents = _who(request)
        call = self._call(context, request, actor, agents)
        contextual = self._contextual(request)
        outcome = await self._service.check(
            tenant,
            self._item(request),
            convert.consistency(request.consistency, tenant),
            call,
            explain=True,
            contextual=contextual,
            actor=actor,
            agents=agents,
        )
        result: CheckResult = outcome.result
        return permissions_pb2.ExplainResponse(
            decision=convert.decision_to_proto(result.decision),
            missing_context=result.missing_context,
            explanation=explanation_to_proto(result, self._max_nodes, contextual),
            checked_at=convert.token(tenant, outcome.revision),
            decision_id=outcome.decision_id,
        )


def _who(request: Any) -> tuple[SubjectRef | None, tuple[SubjectRef, ...]]:
    """The request's impersonating actor and delegation chain (either may be empty)."""
    if not request.agents and not request.HasField("actor"):
        return None, ()  # most calls act for themselves
    actor = convert.subject_ref(request.actor, "actor") if request.HasField("actor") else None
    agents = tuple(
        convert.subject_ref(agent, f"agents[{i}]") for i, agent in enumerate(request.agents)
    )
    return actor, agents
