"""Why: the explanation of a decision as a graph, from a live check (PermissionsService
Explain, every branch evaluated) or from a decision id in the tenant's log
(AuditService ExplainDecision, the steps recorded when it was decided).

Both forms are GET forms, so an answer has a URL to bookmark or share (the server still
asks for the viewer's key), and both work without JavaScript.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from starlette.responses import Response

from authz_service.api.gen.authz.v1 import audit_pb2, core_pb2
from authz_service.console.backend import CALL_TIMEOUT_S, call_error
from authz_service.console.graph import Graph, from_explanation
from authz_service.console.page import Ctx, Page, PageRoute
from authz_service.console.questions import Answer, Question, ask_tenant
from authz_service.credentials import Scope
from authz_service.errors import InvalidArgument

__all__ = ["PAGE"]

_FIELDS = ("tenant", "resource", "permission", "subject", "context", "decision_id")


@dataclass(frozen=True, slots=True)
class Logged:
    """A decision-log record, as the page shows it."""

    facts: list[tuple[str, str]]  # (label, value) rows
    decision: str
    graph: Graph | None


def _subject(ref: core_pb2.SubjectReference) -> str:
    text = f"{ref.object.object_type}:{ref.object.object_id}" if ref.object.object_type else ""
    return f"{text}#{ref.relation}" if ref.relation else text


def _logged(record: audit_pb2.DecisionRecord) -> Logged:
    decision = core_pb2.Decision.Name(record.decision).removeprefix("DECISION_").lower()
    resource = record.resource
    context = MessageToDict(record.context)
    facts = [
        ("Decision id", record.decision_id),
        ("Time", record.time.ToDatetime().isoformat(timespec="milliseconds") + "Z"),
        ("Kind", audit_pb2.DecisionKind.Name(record.kind).removeprefix("DECISION_KIND_").lower()),
        (
            "Resource",
            f"{resource.object_type}:{resource.object_id}" if resource.object_type else "",
        ),
        ("Action", record.action),
        ("Subject", _subject(record.subject)),
        ("Actor", _subject(record.actor)),
        ("Reason", record.reason),
        ("Context", json.dumps(context, sort_keys=True) if context else ""),
        ("Redacted", ", ".join(record.redacted)),
        ("Decided at revision", record.decided_at.token),
        ("Schema version", record.schema_version),
        ("From cache", "yes" if record.cache_hit else "no"),
        ("Credential", record.credential_id),
    ]
    graph = None
    if record.explanation.HasField("root"):
        graph = from_explanation(record.explanation, record.decision)
    return Logged([(k, v) for k, v in facts if v], decision, graph)


async def _explain_decision(ctx: Ctx, tenant: str, decision_id: str) -> tuple[Logged | None, str]:
    if not ctx.can(Scope.AUDIT):
        return None, "reading the decision log needs the `audit` scope"
    try:
        reply = await ctx.backend.audit.ExplainDecision(
            audit_pb2.ExplainDecisionRequest(tenant=tenant, decision_id=decision_id),
            metadata=ctx.metadata,
            timeout=CALL_TIMEOUT_S,
        )
    except grpc.aio.AioRpcError as exc:
        return None, call_error(exc)
    return _logged(reply.record), ""


async def show(ctx: Ctx) -> Response:
    params = {name: ctx.request.query_params.get(name, "").strip() for name in _FIELDS}
    if not params["tenant"] and not ctx.viewer.platform:
        params["tenant"] = ctx.viewer.tenant
    values: dict[str, Any] = {"asked": params, "answer": None, "logged": None, "error": ""}
    tenant = params["tenant"]
    if params["decision_id"]:
        values["logged"], values["error"] = await _explain_decision(
            ctx, tenant, params["decision_id"]
        )
    elif params["resource"] or params["subject"]:
        try:
            question = Question.from_form({**params, "action": "why"})
        except InvalidArgument as exc:
            values["error"] = exc.message
        else:
            answer: Answer = await ask_tenant(ctx.backend, ctx.metadata, tenant, question)
            values["answer"] = answer
    return ctx.render("why.html", **values)


PAGE = Page(
    slug="why",
    title="Why",
    summary="Why a subject may or may not act: the explanation of a live check or a logged decision, as a graph.",
    needs=Scope.CHECK,
    routes=(PageRoute("", show),),
)
