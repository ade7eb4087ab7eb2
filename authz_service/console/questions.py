"""Questions the playground and the Why page ask, and their answers, either of the
in-memory world (console/sandbox.py) or of a tenant through the gRPC API.

    Question.from_form(fields)         Check, Why (explain), ListPermissions, lookups
    await ask_memory(world, question)  -> Answer
    await ask_tenant(backend, metadata, tenant, question) -> Answer
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import struct_pb2
from google.protobuf.json_format import ParseDict, ParseError

from authz_service.api import convert
from authz_service.api.explain import explanation_to_proto
from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2
from authz_service.console.backend import CALL_TIMEOUT_S, Backend, call_error
from authz_service.console.graph import Graph, from_explanation
from authz_service.console.sandbox import World
from authz_service.engine import CheckItem, Decision
from authz_service.errors import AuthzError, DeadlineExceeded, InvalidArgument, echo
from authz_service.model import FrozenContext, ObjectRef, SubjectRef, parse_object, parse_subject
from authz_service.surrogates import lone_surrogate

__all__ = ["ACTIONS", "LOOKUP_LIMIT", "Answer", "Question", "Row", "ask_memory", "ask_tenant"]

ACTIONS = {
    "check": "Check",
    "why": "Why?",
    "permissions": "List permissions",
    "resources": "Lookup resources",
    "subjects": "Lookup subjects",
}
LOOKUP_LIMIT = 100  # rows shown by a lookup; the answer says when there are more
MAX_CONTEXT_CHARS = 10_000


@dataclass(frozen=True, slots=True)
class Question:
    action: str
    resource: str  # `type:id`; for lookup resources, `type` alone will do
    permission: str
    subject: str  # `type:id[#relation]`; for lookup subjects, `type[#relation]` will do
    context: dict[str, Any]

    @classmethod
    def from_form(cls, values: Mapping[str, str]) -> Question:
        """The question a form asks; InvalidArgument naming the field at fault."""
        action = values.get("action", "check")
        if action not in ACTIONS:
            raise InvalidArgument(f"unknown action `{echo(action)}`", field="action")
        text = values.get("context", "").strip()
        if len(text) > MAX_CONTEXT_CHARS:
            raise InvalidArgument(f"context longer than {MAX_CONTEXT_CHARS} characters")
        try:
            context = json.loads(text) if text else {}
        except json.JSONDecodeError as exc:
            raise InvalidArgument(
                f"context is not JSON: {exc.msg} at column {exc.colno}", field="context"
            ) from None
        if not isinstance(context, dict):
            raise InvalidArgument("context must be a JSON object", field="context")
        problem = lone_surrogate(context, "context")
        if problem is not None:
            raise InvalidArgument(problem, field="context")
        return cls(
            action,
            values.get("resource", "").strip(),
            values.get("permission", "").strip(),
            values.get("subject", "").strip(),
            context,
        )

    @property
    def title(self) -> str:
        if self.action == "permissions":
            return f"permissions of {self.subject} on {self.resource}"
        if self.action == "resources":
            return f"{self.resource_type} resources {self.subject} can {self.permission}"
        if self.action == "subjects":
            return f"{self.subject_type} subjects that can {self.permission} {self.resource}"
        return f"{self.resource}#{self.permission}@{self.subject}"

    @property
    def resource_type(self) -> str:
        return self.resource.partition(":")[0]

    @property
    def subject_type(self) -> str:
        """`user` of `user`, `user:alice`; `group` of `group#member`, `group:eng#member`."""
        return self.subject.partition("#")[0].partition(":")[0]

    @property
    def subject_relation(self) -> str:
        return self.subject.partition("#")[2]

    def object(self) -> ObjectRef:
        return parse_object(self.resource, "resource")

    def subject_ref(self) -> SubjectRef:
        return parse_subject(self.subject, "subject")

    def item(self) -> CheckItem:
        return CheckItem(self.object(), self.permission, self.subject_ref(), self.frozen())

    def frozen(self) -> FrozenContext:
        return FrozenContext(self.context)


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    decision: str  # allowed, denied, conditional
    missing: str = ""  # missing context, for conditional rows


@dataclass
class Answer:
    question: Question
    where: str  # "in memory" or "tenant NAME"
    decision: str = ""  # check and why
    missing: str = ""
    rows: list[Row] = field(default_factory=list)
    graph: Graph | None = None
    decision_id: str = ""
    more: bool = False  # a lookup stopped at LOOKUP_LIMIT
    error: str = ""
    tenant: str = ""  # the tenant asked, if any


def _name(decision: Decision) -> str:
    return decision.value.lower()


def _proto_name(decision: core_pb2.Decision.ValueType) -> str:
    return core_pb2.Decision.Name(decision).removeprefix("DECISION_").lower()


def _missing(names: Sequence[str]) -> str:
    return ", ".join(names)


async def ask_memory(world: World, question: Question) -> Answer:
    answer = Answer(question, "in memory")
    try:
        await _ask_memory(world, question, answer)
    except DeadlineExceeded:
        raise  # the playground's budget (console/budget.py), not the question's answer
    except AuthzError as exc:
        answer.error = exc.message
    return answer


async def _ask_memory(world: World, q: Question, answer: Answer) -> None:
    engine, snap = await world.snapshot()
    if q.action in ("check", "why"):
        result = await world.check(q.item(), explain=q.action == "why")
        answer.decision = _name(result.decision)
        answer.missing = _missing(result.missing_context)
        if result.explanation is not None:
            explanation = explanation_to_proto(result)
            answer.graph = from_explanation(explanation, convert.decision_to_proto(result.decision))
    elif q.action == "permissions":
        found = await engine.list_permissions(snap, q.object(), q.subject_ref(), q.frozen())
        answer.rows = [
            Row(name, _name(r.decision), _missing(r.missing_context)) for name, r in found
        ]
    elif q.action == "resources":
        results = engine.lookup_resources(
            snap, q.resource_type, q.permission, q.subject_ref(), q.frozen(), limit=LOOKUP_LIMIT + 1
        )
        async for resource in results:
            answer.rows.append(
                Row(
                    f"{q.resource_type}:{resource.resource_id}",
                    _name(resource.decision),
                    _missing(resource.missing_context),
                )
            )
    else:
        subjects = engine.lookup_subjects(
            snap, q.object(), q.permission, q.subject_type, q.frozen(),
            subject_relation=q.subject_relation, limit=LOOKUP_LIMIT + 1,
        )  # fmt: skip
        async for s in subjects:
            label = f"{q.subject_type}:{s.subject_id}"
            if s.excluded_subject_ids:
                label += f" except {', '.join(s.excluded_subject_ids)}"
            answer.rows.append(Row(label, _name(s.decision), _missing(s.missing_context)))
    _cap(answer)


def _cap(answer: Answer) -> None:
    if len(answer.rows) > LOOKUP_LIMIT:
        answer.rows = answer.rows[:LOOKUP_LIMIT]
        answer.more = True


def _struct(context: dict[str, Any]) -> struct_pb2.Struct:
    try:
        return ParseDict(context, struct_pb2.Struct())
    except ParseError as exc:
        raise InvalidArgument(f"context cannot be sent: {exc}", field="context") from None


async def ask_tenant(
    backend: Backend, metadata: tuple[tuple[str, str], ...], tenant: str, question: Question
) -> Answer:
    """The tenant's answer, through the API with the viewer's key: the server decides,
    logs and limits it like any other client's call."""
    answer = Answer(question, f"tenant {tenant}", tenant=tenant)
    try:
        await _ask_tenant(backend, metadata, tenant, question, answer)
    except AuthzError as exc:
        answer.error = exc.message
    except grpc.aio.AioRpcError as exc:
        answer.error = call_error(exc)
    return answer


async def _ask_tenant(
    backend: Backend,
    metadata: tuple[tuple[str, str], ...],
    tenant: str,
    q: Question,
    answer: Answer,
) -> None:
    call = {"metadata": metadata, "timeout": CALL_TIMEOUT_S}
    if q.action == "check":
        reply = await backend.permissions.Check(
            permissions_pb2.CheckRequest(
                tenant=tenant,
                resource=convert.object_to_proto(q.object()),
                permission=q.permission,
                subject=convert.subject_to_proto(q.subject_ref()),
                context=_struct(q.context),
            ),
            **call,
        )
        answer.decision = _proto_name(reply.decision)
        answer.missing = _missing(reply.missing_context)
        answer.decision_id = reply.decision_id
    elif q.action == "why":
        explained = await backend.permissions.Explain(
            permissions_pb2.ExplainRequest(
                tenant=tenant,
                resource=convert.object_to_proto(q.object()),
                permission=q.permission,
                subject=convert.subject_to_proto(q.subject_ref()),
                context=_struct(q.context),
            ),
            **call,
        )
        answer.decision = _proto_name(explained.decision)
        answer.missing = _missing(explained.missing_context)
        answer.decision_id = explained.decision_id
        answer.graph = from_explanation(explained.explanation, explained.decision)
    elif q.action == "permissions":
        listed = await backend.permissions.ListPermissions(
            permissions_pb2.ListPermissionsRequest(
                tenant=tenant,
                resource=convert.object_to_proto(q.object()),
                subject=convert.subject_to_proto(q.subject_ref()),
                context=_struct(q.context),
            ),
            **call,
        )
        answer.decision_id = listed.decision_id
        answer.rows = [
            Row(p.permission, _proto_name(p.decision), _missing(p.missing_context))
            for p in listed.permissions
        ]
    elif q.action == "resources":
        stream = backend.permissions.LookupResources(
            permissions_pb2.LookupResourcesRequest(
                tenant=tenant,
                resource_type=q.resource_type,
                permission=q.permission,
                subject=convert.subject_to_proto(q.subject_ref()),
                context=_struct(q.context),
                limit=LOOKUP_LIMIT + 1,
            ),
            **call,
        )
        async for found in stream:
            answer.rows.append(
                Row(
                    f"{q.resource_type}:{found.resource_id}",
                    _proto_name(found.decision),
                    _missing(found.missing_context),
                )
            )
    else:
        subjects = backend.permissions.LookupSubjects(
            permissions_pb2.LookupSubjectsRequest(
                tenant=tenant,
                resource=convert.object_to_proto(q.object()),
                permission=q.permission,
                subject_type=q.subject_type,
                subject_relation=q.subject_relation,
                context=_struct(q.context),
                limit=LOOKUP_LIMIT + 1,
            ),
            **call,
        )
        async for s in subjects:
            label = f"{q.subject_type}:{s.subject_id}"
            if s.excluded_subject_ids:
                label += f" except {', '.join(s.excluded_subject_ids)}"
            answer.rows.append(Row(label, _proto_name(s.decision), _missing(s.missing_context)))
    _cap(answer)
