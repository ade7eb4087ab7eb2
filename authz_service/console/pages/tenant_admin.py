"""Tenant admin: custom roles, role bindings (each previewed by its reach before it is
created), and a subject's lifecycle (suspend, reactivate, deprovision, with a reason).

Everything goes through TenancyService with the viewer's key. The server asks `write`
even for the reads (they reveal who holds what), so the page needs `write`; a key
without it does not see the page, and its POSTs are refused like its calls would be.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.responses import Response

from authz_service.api import convert
from authz_service.api.gen.authz.v1 import core_pb2, tenancy_pb2
from authz_service.console.backend import CALL_TIMEOUT_S, call_error
from authz_service.console.page import Ctx, Page, PageRoute
from authz_service.credentials import Scope
from authz_service.errors import InvalidArgument, echo
from authz_service.model import parse_object, parse_subject

__all__ = ["PAGE"]

LIST_LIMIT = 100  # roles and bindings shown; the page says when there are more
REACH_LIMIT = 100  # resources listed by a reach preview (the counts cover all)

STATUS_NAMES = {
    tenancy_pb2.SUBJECT_STATUS_ACTIVE: "active",
    tenancy_pb2.SUBJECT_STATUS_SUSPENDED: "suspended",
    tenancy_pb2.SUBJECT_STATUS_DEPROVISIONED: "deprovisioned",
}
# ScimDrift's lists, with what each means, in the page's order.
DRIFT_PARTS = (
    ("deactivated_upstream", "deactivated by the IdP, active here"),
    ("inactive_here", "active at the IdP, suspended or deprovisioned here"),
    ("removed_upstream", "memberships the IdP no longer asserts"),
    ("written_outside", "memberships written outside SCIM"),
    ("missing_here", "memberships the IdP asserts, missing here"),
)
_PERMISSION = re.compile(r"([^.\s]+)\.([^.\s]+)")


@dataclass
class View:
    """What the page shows besides the lists: the outcome of the last action."""

    notice: str = ""
    error: str = ""
    subject: str = ""  # the subject whose status is shown
    proposed: dict[str, str] = field(default_factory=dict)  # a binding being previewed
    reach: tenancy_pb2.GrantReachResponse | None = None
    scim: bool = False  # show the SCIM sync status and drift


def when(stamp: Timestamp) -> str:
    if not stamp.seconds and not stamp.nanos:
        return ""
    return stamp.ToDatetime(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ref_text(
    ref: core_pb2.ObjectReference | core_pb2.SubjectReference | core_pb2.Relationship,
) -> str:
    """`type:id`, `type:id#relation`, or a relationship `resource#relation@subject`."""
    if isinstance(ref, core_pb2.Relationship):
        return f"{ref_text(ref.resource)}#{ref.relation}@{ref_text(ref.subject)}"
    if isinstance(ref, core_pb2.SubjectReference):
        text = ref_text(ref.object)
        return f"{text}#{ref.relation}" if ref.relation else text
    return f"{ref.object_type}:{ref.object_id}" if ref.object_type else ""


def _tenant(ctx: Ctx) -> str:
    """The key's own tenant; a platform key names one (form or query)."""
    if not ctx.viewer.platform:
        return ctx.viewer.tenant
    return (ctx.field("tenant") or ctx.request.query_params.get("tenant", "")).strip()


def _required(ctx: Ctx, name: str, label: str) -> str:
    value = ctx.field(name).strip()
    if not value:
        raise InvalidArgument(f"{label} is required", field=name)
    return value


def _permissions(text: str) -> list[tenancy_pb2.RolePermission]:
    items = [item for item in re.split(r"[\s,]+", text) if item]
    if not items:
        raise InvalidArgument("a role needs at least one permission", field="permissions")
    found = []
    for item in items:
        match = _PERMISSION.fullmatch(item)
        if match is None:
            raise InvalidArgument(
                f"`{echo(item)}` is not of the form `definition.permission`",
                field="permissions",
            )
        found.append(tenancy_pb2.RolePermission(resource_type=match[1], permission=match[2]))
    return found


def _role(ctx: Ctx) -> tenancy_pb2.Role:
    return tenancy_pb2.Role(
        name=_required(ctx, "name", "the role's name"),
        description=ctx.field("description").strip(),
        permissions=_permissions(ctx.field("permissions")),
    )


def _binding(ctx: Ctx) -> core_pb2.RoleBinding:
    binding = core_pb2.RoleBinding(
        role=_required(ctx, "role", "the role"),
        subject=convert.subject_to_proto(
            parse_subject(_required(ctx, "subject", "the subject"), "subject")
        ),
    )
    resource = ctx.field("resource").strip()
    if resource:
        binding.resource.CopyFrom(convert.object_to_proto(parse_object(resource, "resource")))
    return binding


def _subject(ctx: Ctx) -> core_pb2.ObjectReference:
    return convert.object_to_proto(
        parse_object(_required(ctx, "subject", "the subject"), "subject")
    )


async def _lists(ctx: Ctx, tenant: str) -> dict[str, Any]:
    """Roles, bindings and (when asked) a subject's status, for the page."""
    # Fully consistent: a page shown right after a change must show the change.
    fresh = core_pb2.Consistency(fully_consistent=True)
    roles = await ctx.backend.tenancy.ListRoles(
        tenancy_pb2.ListRolesRequest(tenant=tenant, limit=LIST_LIMIT, consistency=fresh),
        **_call(ctx),
    )
    bindings = await ctx.backend.tenancy.ListBindings(
        tenancy_pb2.ListBindingsRequest(tenant=tenant, limit=LIST_LIMIT, consistency=fresh),
        **_call(ctx),
    )
    return {"roles": roles, "bindings": bindings}


async def _status(ctx: Ctx, tenant: str, subject: str) -> tenancy_pb2.GetSubjectStatusResponse:
    request = tenancy_pb2.GetSubjectStatusRequest(
        tenant=tenant, subject=convert.object_to_proto(parse_object(subject, "subject"))
    )
    request.consistency.fully_consistent = True  # right after a change, show it
    result: tenancy_pb2.GetSubjectStatusResponse = await ctx.backend.tenancy.GetSubjectStatus(
        request, metadata=ctx.metadata, timeout=CALL_TIMEOUT_S
    )
    return result


async def _render(ctx: Ctx, view: View, template: str = "tenant_admin.html") -> Response:
    tenant = _tenant(ctx)
    values: dict[str, Any] = {
        "tenant": tenant,
        "view": view,
        "roles": None,
        "bindings": None,
        "status": None,
        "scim": None,
        "drift_parts": DRIFT_PARTS,
        "status_names": STATUS_NAMES,
        "when": when,
        "ref": ref_text,
    }
    if tenant and template == "tenant_admin.html":  # the reach fragment needs no lists
        try:
            values.update(await _lists(ctx, tenant))
            if view.subject:
                values["status"] = await _status(ctx, tenant, view.subject)
            if view.scim:
                values["scim"] = await ctx.backend.tenancy.GetScimSync(
                    tenancy_pb2.GetScimSyncRequest(tenant=tenant), **_call(ctx)
                )
        except grpc.aio.AioRpcError as exc:
            view.error = view.error or call_error(exc)
        except InvalidArgument as exc:
            view.error = view.error or exc.message
    # htmx swaps only 2xx answers: an error it should show comes with 200.
    status_code = 400 if view.error and not ctx.htmx else 200
    return ctx.render(template, status_code=status_code, fragment=ctx.htmx, **values)


async def show(ctx: Ctx) -> Response:
    params = ctx.request.query_params
    return await _render(
        ctx, View(subject=params.get("subject", "").strip(), scim=bool(params.get("scim")))
    )


Action = Callable[[Ctx, str], Awaitable[str]]


def _action(
    act: Action, *, keep_subject: bool = False, scim: bool = False
) -> Callable[[Ctx], Awaitable[Response]]:
    """A POST: do `act`, then show the page with its notice, or with the error (the
    server's, which names the field at fault)."""

    async def endpoint(ctx: Ctx) -> Response:
        view = View(subject=ctx.field("subject").strip() if keep_subject else "", scim=scim)
        tenant = _tenant(ctx)
        try:
            if not tenant:
                raise InvalidArgument("the tenant is required", field="tenant")
            view.notice = await act(ctx, tenant)
        except grpc.aio.AioRpcError as exc:
            view.error = call_error(exc)
        except InvalidArgument as exc:
            view.error = exc.message
        return await _render(ctx, view)

    return endpoint


def _call(ctx: Ctx) -> dict[str, Any]:
    return {"metadata": ctx.metadata, "timeout": CALL_TIMEOUT_S}


async def _create_role(ctx: Ctx, tenant: str) -> str:
    role = _role(ctx)
    await ctx.backend.tenancy.CreateRole(
        tenancy_pb2.CreateRoleRequest(tenant=tenant, role=role), **_call(ctx)
    )
    return f"Role {role.name} created."


async def _update_role(ctx: Ctx, tenant: str) -> str:
    role = _role(ctx)
    await ctx.backend.tenancy.UpdateRole(
        tenancy_pb2.UpdateRoleRequest(tenant=tenant, role=role), **_call(ctx)
    )
    return f"Role {role.name} updated."


async def _delete_role(ctx: Ctx, tenant: str) -> str:
    name = _required(ctx, "name", "the role's name")
    reply = await ctx.backend.tenancy.DeleteRole(
        tenancy_pb2.DeleteRoleRequest(
            tenant=tenant, name=name, cascade=ctx.field("cascade") == "on"
        ),
        **_call(ctx),
    )
    removed = reply.deleted_binding_count
    return f"Role {name} deleted" + (f" with {removed} bindings." if removed else ".")


async def _create_binding(ctx: Ctx, tenant: str) -> str:
    reply = await ctx.backend.tenancy.CreateBinding(
        tenancy_pb2.CreateBindingRequest(tenant=tenant, binding=_binding(ctx)), **_call(ctx)
    )
    return f"Binding {reply.binding.binding_id} created."


async def _delete_binding(ctx: Ctx, tenant: str) -> str:
    binding_id = _required(ctx, "binding_id", "the binding id")
    await ctx.backend.tenancy.DeleteBinding(
        tenancy_pb2.DeleteBindingRequest(tenant=tenant, binding_id=binding_id), **_call(ctx)
    )
    return f"Binding {binding_id} deleted."


async def reach(ctx: Ctx) -> Response:
    """GrantReach of the proposed binding: what it would open, before it exists."""
    proposed = {name: ctx.field(name).strip() for name in ("role", "subject", "resource")}
    view = View(proposed=proposed)
    tenant = _tenant(ctx)
    try:
        if not tenant:
            raise InvalidArgument("the tenant is required", field="tenant")
        request = tenancy_pb2.GrantReachRequest(
            tenant=tenant, binding=_binding(ctx), limit=REACH_LIMIT
        )
        request.consistency.fully_consistent = True
        view.reach = await ctx.backend.tenancy.GrantReach(request, **_call(ctx))
    except grpc.aio.AioRpcError as exc:
        view.error = call_error(exc)
    except InvalidArgument as exc:
        view.error = exc.message
    return await _render(ctx, view, "tenant_reach.html" if ctx.htmx else "tenant_admin.html")


def _lifecycle(method: str, verb: str) -> Action:
    async def act(ctx: Ctx, tenant: str) -> str:
        subject = _subject(ctx)
        reason = _required(ctx, "reason", "a reason")
        request_type = getattr(tenancy_pb2, f"{method}Request")
        reply = await getattr(ctx.backend.tenancy, method)(
            request_type(tenant=tenant, subject=subject, reason=reason), **_call(ctx)
        )
        text = f"{ref_text(subject)} {verb}."
        removed = len(getattr(reply, "removed_relationships", ())) + len(
            getattr(reply, "removed_bindings", ())
        )
        if method == "DeprovisionSubject":
            text += f" {removed} relationships and bindings removed."
        return text

    return act


async def _repair_scim(ctx: Ctx, tenant: str) -> str:
    reason = _required(ctx, "reason", "a reason")
    reply = await ctx.backend.tenancy.RepairScimDrift(
        tenancy_pb2.RepairScimDriftRequest(tenant=tenant, reason=reason), **_call(ctx)
    )
    changes = sum(len(getattr(reply.repaired, name)) for name, _ in DRIFT_PARTS)
    return f"SCIM drift repaired: {changes} changes." if changes else "Nothing to repair."


PAGE = Page(
    slug="tenant",
    title="Tenant admin",
    summary="Roles, bindings and their reach, subject status.",
    needs=Scope.WRITE,
    routes=(
        PageRoute("", show),
        PageRoute("/roles/create", _action(_create_role), methods=("POST",)),
        PageRoute("/roles/update", _action(_update_role), methods=("POST",)),
        PageRoute("/roles/delete", _action(_delete_role), methods=("POST",)),
        PageRoute("/bindings/reach", reach, methods=("POST",)),
        PageRoute("/bindings/create", _action(_create_binding), methods=("POST",)),
        PageRoute("/bindings/delete", _action(_delete_binding), methods=("POST",)),
        PageRoute(
            "/subject/suspend",
            _action(_lifecycle("SuspendSubject", "suspended"), keep_subject=True),
            methods=("POST",),
        ),
        PageRoute(
            "/subject/reactivate",
            _action(_lifecycle("ReactivateSubject", "reactivated"), keep_subject=True),
            methods=("POST",),
        ),
        PageRoute(
            "/subject/deprovision",
            _action(_lifecycle("DeprovisionSubject", "deprovisioned"), keep_subject=True),
            methods=("POST",),
        ),
        PageRoute("/scim/repair", _action(_repair_scim, scim=True), methods=("POST",)),
    ),
)
