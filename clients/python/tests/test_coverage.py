"""Every RPC of every authz.v1 service has a client method, and calling it reaches the server.

The RPCs are enumerated from the generated descriptors, not listed by hand: an RPC added to
proto/ without a client method (and a row in CALLS) fails `test_every_rpc_has_a_method`.
Both clients then make every call, in the order of CALLS, against a real server on
PostgreSQL with the decision log on; an interceptor records the RPCs each method sent,
which must be exactly its own RPC, once, and every call must succeed.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from authz_client import AsyncAuthzClient, AuthzClient, ExplanationNode, RelationshipFilter

import authz_service.api.gen.authz.v1 as generated

Ctx = dict[str, Any]
Call = tuple[tuple[Any, ...], dict[str, Any]]


def _call(*args: Any, **kwargs: Any) -> Call:
    return args, kwargs


def _doc(c: Ctx) -> str:
    return f"document:{c['unique']}"


def _only_doc(c: Ctx) -> RelationshipFilter:
    return RelationshipFilter(resource_type="document", resource_ids=(c["unique"],))


# RPC -> (client method, its arguments from what earlier calls returned). In call order.
CALLS: dict[str, tuple[str, Callable[[Ctx], Call]]] = {
    "TenantService/CreateTenant": ("create_tenant", lambda c: _call(c["tenant"], reason="cov")),
    "TenantService/GetTenant": ("get_tenant", lambda c: _call()),
    "TenantService/ListTenants": ("list_tenants", lambda c: _call(limit=100)),
    "SchemaService/ReadSchema": ("read_schema", lambda c: _call()),
    "SchemaService/WriteSchema": ("write_schema", lambda c: _call(c["ReadSchema"].schema)),
    "RelationshipsService/WriteRelationships": (
        "write_relationships",
        lambda c: _call([f"{_doc(c)}#viewer@user:erin"]),
    ),
    "RelationshipsService/Watch": ("watch", lambda c: _call(after=c["GetTenant"].head)),
    "RelationshipsService/ReadRelationships": (
        "read_relationships",
        lambda c: _call(_only_doc(c)),
    ),
    "PermissionsService/Check": (
        "check",
        lambda c: _call(_doc(c), "view", "user:erin", with_explanation=True),
    ),
    "PermissionsService/CheckBulk": (
        "check_bulk",
        lambda c: _call([(_doc(c), "view", "user:erin"), (_doc(c), "view", "user:bob")]),
    ),
    "PermissionsService/ListPermissions": (
        "list_permissions",
        lambda c: _call(_doc(c), "user:erin", context={}),
    ),
    "PermissionsService/LookupResources": (
        "lookup_resources",
        lambda c: _call("document", "view", "user:erin", context={}),
    ),
    "PermissionsService/LookupSubjects": (
        "lookup_subjects",
        lambda c: _call(_doc(c), "view", "user", context={}),
    ),
    "PermissionsService/Explain": (
        "explain",
        lambda c: _call(
            _doc(c), "view", "user:frank", contextual_relationships=[f"{_doc(c)}#viewer@user:frank"]
        ),
    ),
    "TenancyService/CreateRole": (
        "create_role",
        lambda c: _call(c["role"], [("document", "view")], description="readers"),
    ),
    "TenancyService/UpdateRole": (
        "update_role",
        lambda c: _call(c["role"], [("document", "view"), ("document", "edit")]),
    ),
    "TenancyService/ListRoles": ("list_roles", lambda c: _call()),
    "TenancyService/CreateBinding": (
        "create_binding",
        lambda c: _call(c["role"], "user:gina", _doc(c)),
    ),
    "TenancyService/ListBindings": ("list_bindings", lambda c: _call(subject="user:gina")),
    "TenancyService/GrantReach": (
        "grant_reach",
        lambda c: _call(binding_id=c["CreateBinding"].binding.binding_id),
    ),
    "TenancyService/DeleteBinding": (
        "delete_binding",
        lambda c: _call(c["CreateBinding"].binding.binding_id),
    ),
    "TenancyService/DeleteRole": ("delete_role", lambda c: _call(c["role"], cascade=True)),
    "TenancyService/GetSubjectStatus": ("get_subject_status", lambda c: _call("user:erin")),
    "TenancyService/SuspendSubject": (
        "suspend_subject",
        lambda c: _call("user:erin", reason="cov"),
    ),
    "TenancyService/ReactivateSubject": (
        "reactivate_subject",
        lambda c: _call("user:erin", reason="cov"),
    ),
    "TenancyService/DeprovisionSubject": (
        "deprovision_subject",
        lambda c: _call("user:erin", reason="cov"),
    ),
    "TenancyService/GetScimSync": ("get_scim_sync", lambda c: _call()),
    "TenancyService/RepairScimDrift": ("repair_scim_drift", lambda c: _call(reason="cov")),
    "KeysService/CreateKey": ("create_key", lambda c: _call(scopes=["check"], reason="cov")),
    "KeysService/ListKeys": ("list_keys", lambda c: _call()),
    "KeysService/RotateKey": (
        "rotate_key",
        lambda c: _call(c["CreateKey"].key.key_id, overlap=timedelta(0)),
    ),
    "KeysService/RevokeKey": (
        "revoke_key",
        lambda c: _call(c["CreateKey"].key.key_id, reason="cov"),
    ),
    "ServiceAccountsService/CreateServiceAccount": (
        "create_service_account",
        lambda c: _call("ci", description="cov", reason="cov"),
    ),
    "ServiceAccountsService/GetServiceAccount": ("get_service_account", lambda c: _call("ci")),
    "ServiceAccountsService/ListServiceAccounts": ("list_service_accounts", lambda c: _call()),
    "ServiceAccountsService/CreateServiceAccountKey": (
        "create_service_account_key",
        lambda c: _call("ci", scopes=["check"], reason="cov"),
    ),
    "ServiceAccountsService/ListServiceAccountKeys": (
        "list_service_account_keys",
        lambda c: _call("ci"),
    ),
    "ServiceAccountsService/DisableServiceAccount": (
        "disable_service_account",
        lambda c: _call("ci", reason="cov"),
    ),
    "ServiceAccountsService/EnableServiceAccount": (
        "enable_service_account",
        lambda c: _call("ci", reason="cov"),
    ),
    "ServiceAccountsService/ReportServiceAccounts": (
        "report_service_accounts",
        lambda c: _call(window=timedelta(days=7)),
    ),
    "ServiceAccountsService/DeleteServiceAccount": (
        "delete_service_account",
        lambda c: _call("ci", reason="cov"),
    ),
    "RelationshipsService/DeleteRelationships": (
        "delete_relationships",
        lambda c: _call(_only_doc(c)),
    ),
    "AuditService/QueryDecisions": ("query_decisions", lambda c: _call(resource=_doc(c))),
    "AuditService/VerifyLog": ("verify_log", lambda c: _call()),
    "AuditService/ExplainDecision": (
        "explain_decision",
        lambda c: _call(c["Check"].decision_id),
    ),
    "AuditService/ReplayDecisions": ("replay_decisions", lambda c: _call(resource=_doc(c))),
    "TenantService/SuspendTenant": ("suspend_tenant", lambda c: _call(reason="cov")),
    "TenantService/ExportTenant": ("export_tenant", lambda c: _call()),
    "TenantService/ReactivateTenant": ("reactivate_tenant", lambda c: _call(reason="cov")),
    "TenantService/DeleteTenant": (
        "delete_tenant",
        lambda c: _call(
            c["tenant"], reason="cov", expected_export_sha256=c["ExportTenant"].export_sha256
        ),
    ),
}


def service_rpcs() -> set[str]:
    """`Service/Method` of every RPC in the generated authz.v1 modules."""
    found = set()
    for module in pkgutil.iter_modules(generated.__path__):
        if not module.name.endswith("_pb2"):
            continue
        descriptor = importlib.import_module(f"{generated.__name__}.{module.name}").DESCRIPTOR
        for service in descriptor.services_by_name.values():
            assert service.full_name.startswith("authz.v1.")
            found.update(f"{service.name}/{method.name}" for method in service.methods)
    return found


def test_every_rpc_has_a_method() -> None:
    rpcs = service_rpcs()
    # The enumeration itself works: it sees at least the services that exist today.
    assert {rpc.split("/")[0] for rpc in rpcs} >= {
        "AuditService",
        "KeysService",
        "PermissionsService",
        "RelationshipsService",
        "SchemaService",
        "TenancyService",
        "TenantService",
    }
    assert sorted(rpcs - CALLS.keys()) == [], "RPCs without a client method"
    assert sorted(CALLS.keys() - rpcs) == [], "client methods of RPCs that do not exist"
    for name, _ in CALLS.values():
        assert callable(getattr(AsyncAuthzClient, name, None)), name
        assert callable(getattr(AuthzClient, name, None)), name


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_the_two_clients_have_the_same_methods() -> None:
    async_methods = _public_methods(AsyncAuthzClient)
    sync_methods = _public_methods(AuthzClient)
    assert async_methods.keys() == sync_methods.keys()
    for name, signature in async_methods.items():
        assert signature.parameters == sync_methods[name].parameters, name
        returned = str(signature.return_annotation).replace("AsyncIterator", "Iterator")
        assert returned == str(sync_methods[name].return_annotation), name


def _context() -> Ctx:
    unique = uuid.uuid4().hex[:10]
    return {"unique": unique, "tenant": f"cov-{unique}", "role": f"reader_{unique}"}


def _rpc(method: str | bytes) -> str:
    text = method.decode() if isinstance(method, bytes) else method
    return text.removeprefix("/authz.v1.")


class _AioUnary(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]  # generic only in grpc-stubs
    def __init__(self, rpcs: list[str]) -> None:
        self.rpcs = rpcs

    async def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Awaitable[Any]], details: Any, request: Any
    ) -> Any:
        self.rpcs.append(_rpc(details.method))
        return await continuation(details, request)


class _AioStream(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    def __init__(self, rpcs: list[str]) -> None:
        self.rpcs = rpcs

    async def intercept_unary_stream(
        self, continuation: Callable[[Any, Any], Awaitable[Any]], details: Any, request: Any
    ) -> Any:
        self.rpcs.append(_rpc(details.method))
        return await continuation(details, request)


class SyncRecorder(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]  # generic only in grpc-stubs
    grpc.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Records the RPC of every attempt (grpc.intercept_channel accepts one object for
    both kinds; grpc.aio wants one interceptor per kind, hence the two classes above)."""

    def __init__(self) -> None:
        self.rpcs: list[str] = []

    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        self.rpcs.append(_rpc(details.method))
        return continuation(details, request)

    def intercept_unary_stream(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        self.rpcs.append(_rpc(details.method))
        return continuation(details, request)


async def _invoke_async(client: AsyncAuthzClient, name: str, call: Call) -> Any:
    result = getattr(client, name)(*call[0], **call[1])
    if inspect.isawaitable(result):
        return await result
    assert isinstance(result, AsyncIterator)
    if name == "watch":  # endless: the first event (the write above) is enough
        try:
            return await anext(result)
        finally:
            await result.aclose()  # type: ignore[attr-defined]  # an async generator
    return [item async for item in result]


def _invoke_sync(client: AuthzClient, name: str, call: Call) -> Any:
    result = getattr(client, name)(*call[0], **call[1])
    if not isinstance(result, Iterator):
        return result
    if name == "watch":
        try:
            return next(result)
        finally:
            result.close()  # type: ignore[attr-defined]  # a generator
    return list(result)


def _nodes(node: ExplanationNode) -> list[ExplanationNode]:
    return [node, *(n for child in node.children for n in _nodes(child))]


def _check_outcomes(ctx: Ctx) -> None:
    # Spot checks that the calls did what they say (all of them returned without error).
    assert ctx["Check"].allowed
    assert ctx["Check"].explanation is not None
    assert [r.allowed for r in ctx["CheckBulk"]] == [True, False]
    assert ctx["Explain"].allowed  # through the contextual relationship
    granted = {n.relationship for n in _nodes(ctx["Explain"].explanation.root)}
    assert f"{_doc(ctx)}#viewer@user:frank" in granted
    assert ctx["Watch"].changes[0].text == f"{_doc(ctx)}#viewer@user:erin"
    assert ctx["ExplainDecision"].decision_id == ctx["Check"].decision_id
    assert ctx["ExportTenant"].relationship_count >= 1
    assert ctx["CreateServiceAccount"].subject == "serviceaccount:ci"
    assert [k.service_account for k in ctx["ListServiceAccountKeys"]] == ["ci"]
    assert ctx["DisableServiceAccount"].account.disabled
    assert ctx["DeleteServiceAccount"].revoked_key_ids == (
        ctx["CreateServiceAccountKey"].key.key_id,
    )
    assert ctx["DeleteTenant"].export_sha256 == ctx["ExportTenant"].export_sha256


async def test_every_rpc_through_the_async_client(pg_server: str) -> None:
    ctx = _context()
    sent: list[str] = []
    interceptors = [_AioUnary(sent), _AioStream(sent)]
    async with AsyncAuthzClient(
        pg_server, tenant=ctx["tenant"], interceptors=interceptors
    ) as client:
        for rpc, (name, arguments) in CALLS.items():
            before = len(sent)
            ctx[rpc.split("/")[1]] = await _invoke_async(client, name, arguments(ctx))
            assert sent[before:] == [rpc], f"{name} sent {sent[before:]}, not {rpc}"
    _check_outcomes(ctx)


def test_every_rpc_through_the_sync_client(pg_server: str) -> None:
    ctx = _context()
    recorder = SyncRecorder()
    with AuthzClient(pg_server, tenant=ctx["tenant"], interceptors=[recorder]) as client:
        for rpc, (name, arguments) in CALLS.items():
            before = len(recorder.rpcs)
            ctx[rpc.split("/")[1]] = _invoke_sync(client, name, arguments(ctx))
            sent = recorder.rpcs[before:]
            assert sent == [rpc], f"{name} sent {sent}, not {rpc}"
    _check_outcomes(ctx)


def test_the_readme_documents_every_method() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    undocumented = [name for name in _public_methods(AsyncAuthzClient) if f"`{name}(" not in readme]
    assert undocumented == []
