"""Audit: query a tenant's decision log (AuditService QueryDecisions), verify its chain
with the result per stream (VerifyLog), and replay a time range to see what would be
decided differently today (ReplayDecisions). All three only read; the page needs `audit`.

The query is a GET form (a result has a URL); verify and replay are POSTs, as they make
the server work (reading the whole log, re-evaluating decisions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.responses import Response

from authz_service.api import convert
from authz_service.api.gen.authz.v1 import audit_pb2, core_pb2
from authz_service.console.backend import CALL_TIMEOUT_S, call_error
from authz_service.console.page import Ctx, Page, PageRoute
from authz_service.console.pages.tenant_admin import ref_text, when
from authz_service.credentials import Scope
from authz_service.errors import InvalidArgument, echo
from authz_service.model import parse_object, parse_subject

__all__ = ["PAGE"]

PAGE_SIZE = 50  # records per page of a query
REPLAY_LIMIT = 1000  # records per replay (the server's default); the summary says if cut

OUTCOMES = {
    "": core_pb2.DECISION_UNSPECIFIED,
    "allowed": core_pb2.DECISION_ALLOWED,
    "denied": core_pb2.DECISION_DENIED,
    "conditional": core_pb2.DECISION_CONDITIONAL,
}
_QUERY_FIELDS = ("tenant", "subject", "resource", "outcome", "start", "end", "cursor")
_REPLAY_FIELDS = ("tenant", "subject", "resource", "start", "end", "schema_version")


@dataclass
class View:
    values: dict[str, str] = field(default_factory=dict)  # the forms' values
    error: str = ""
    records: list[audit_pb2.DecisionRecord] | None = None
    next_cursor: str = ""
    verify: audit_pb2.VerifyLogResponse | None = None
    replayed: list[audit_pb2.ReplayedDecision] | None = None
    summary: audit_pb2.ReplaySummary | None = None


def _decision(value: int) -> str:
    return core_pb2.Decision.Name(value).removeprefix("DECISION_").lower()  # type: ignore[arg-type]


def _reason(record: audit_pb2.DecisionRecord) -> str:
    """Why, in a few words: the deny reason, and the impersonation or change reason."""
    parts = []
    if record.explanation.deny_reason:
        name = core_pb2.DenyReason.Name(record.explanation.deny_reason)
        parts.append(name.removeprefix("DENY_REASON_").lower().replace("_", " "))
    if record.reason:
        parts.append(record.reason)
    return "; ".join(parts)


def _time(values: dict[str, str], name: str, label: str) -> datetime | None:
    """A `datetime-local` value (or ISO 8601), read as UTC unless it names a zone."""
    text = values.get(name, "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            f"{label} `{echo(text)}` is not a time like 2026-01-31T09:30", field=name
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _tenant(ctx: Ctx, values: dict[str, str]) -> str:
    if not ctx.viewer.platform:
        return ctx.viewer.tenant
    tenant = values.get("tenant", "").strip()
    if not tenant:
        raise InvalidArgument("the tenant is required", field="tenant")
    return tenant


def _filters(values: dict[str, str]) -> dict[str, Any]:
    """The subject, resource and time range shared by query and replay, as proto fields."""
    found: dict[str, Any] = {}
    subject = values.get("subject", "").strip()
    if subject:
        found["subject"] = convert.subject_to_proto(parse_subject(subject, "subject"))
    resource = values.get("resource", "").strip()
    if resource:
        found["resource"] = convert.object_to_proto(parse_object(resource, "resource"))
    for name, label in (("start", "From"), ("end", "To")):
        moment = _time(values, name, label)
        if moment is not None:
            stamp = Timestamp()
            stamp.FromDatetime(moment)
            found[f"{name}_time"] = stamp
    return found


def _render(ctx: Ctx, view: View) -> Response:
    tenant = view.values.get("tenant", "") or ("" if ctx.viewer.platform else ctx.viewer.tenant)
    return ctx.render(
        "audit.html",
        status_code=400 if view.error and not ctx.htmx else 200,
        view=view,
        tenant=tenant,
        outcomes=OUTCOMES,
        decision=_decision,
        reason=_reason,
        ref=ref_text,
        when=when,
        why=any(p.slug == "why" for p in ctx.pages),
        replay_limit=REPLAY_LIMIT,
        match=audit_pb2.REPLAY_OUTCOME_MATCH,
        cannot_replay=audit_pb2.REPLAY_OUTCOME_CANNOT_REPLAY,
    )


async def show(ctx: Ctx) -> Response:
    """The query form, and its result once it was submitted (it has a `tenant` or a filter)."""
    params = ctx.request.query_params
    view = View(values={name: params.get(name, "") for name in _QUERY_FIELDS})
    if not ctx.viewer.platform:
        view.values["tenant"] = ctx.viewer.tenant
    if not params.get("run"):
        return _render(ctx, view)
    try:
        request = audit_pb2.QueryDecisionsRequest(
            tenant=_tenant(ctx, view.values),
            decision=OUTCOMES.get(view.values["outcome"], core_pb2.DECISION_UNSPECIFIED),
            limit=PAGE_SIZE,
            **_filters(view.values),
        )
        if view.values["cursor"]:
            request.cursor.token = view.values["cursor"]
        view.records = []
        call = ctx.backend.audit.QueryDecisions(
            request, metadata=ctx.metadata, timeout=CALL_TIMEOUT_S
        )
        async for reply in call:
            view.records.append(reply.record)
            view.next_cursor = reply.cursor.token
        if len(view.records) < PAGE_SIZE:
            view.next_cursor = ""  # the last page
    except grpc.aio.AioRpcError as exc:
        view.error = call_error(exc)
    except InvalidArgument as exc:
        view.error = exc.message
    return _render(ctx, view)


async def verify(ctx: Ctx) -> Response:
    view = View(values={"tenant": ctx.field("tenant")})
    try:
        view.verify = await ctx.backend.audit.VerifyLog(
            audit_pb2.VerifyLogRequest(
                tenant=_tenant(ctx, view.values), public_key_pem=ctx.field("public_key_pem")
            ),
            metadata=ctx.metadata,
            timeout=CALL_TIMEOUT_S,
        )
    except grpc.aio.AioRpcError as exc:
        view.error = call_error(exc)
    except InvalidArgument as exc:
        view.error = exc.message
    return _render(ctx, view)


async def replay(ctx: Ctx) -> Response:
    view = View(values={name: ctx.field(name) for name in _REPLAY_FIELDS})
    try:
        request = audit_pb2.ReplayDecisionsRequest(
            tenant=_tenant(ctx, view.values),
            schema_version=view.values["schema_version"].strip(),
            limit=REPLAY_LIMIT,
            **_filters(view.values),
        )
        view.replayed = []
        call = ctx.backend.audit.ReplayDecisions(
            request, metadata=ctx.metadata, timeout=CALL_TIMEOUT_S
        )
        async for reply in call:
            if reply.WhichOneof("item") == "summary":
                view.summary = reply.summary
            else:
                view.replayed.append(reply.decision)
    except grpc.aio.AioRpcError as exc:
        view.error = call_error(exc)  # a replay cut short shows no summary, only this
    except InvalidArgument as exc:
        view.error = exc.message
    return _render(ctx, view)


PAGE = Page(
    slug="audit",
    title="Audit",
    summary="Query the decision log, verify its chain, replay a time range.",
    needs=Scope.AUDIT,
    routes=(
        PageRoute("", show),
        PageRoute("/verify", verify, methods=("POST",)),
        PageRoute("/replay", replay, methods=("POST",)),
    ),
)
