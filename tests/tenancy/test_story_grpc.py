"""Issue 4's story, end to end over gRPC against PostgreSQL, with API keys on.

acme defines `billing-admin`, binds it to `group:finance#member` on `folder:invoices`;
a finance member pays an invoice in a subfolder; support acts on the member's behalf
(allowed, except for a non-delegable action); suspension denies everything from its
token on, cached answers included; reactivation restores; the reach report lists exactly
the invoices the binding opens; deprovisioning removes and reports; a globex key reads
none of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2, tenancy_pb2
from authz_service.app import App
from authz_service.credentials import Scope, new_key
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import ALLOWED, DENIED, Api, obj, subj
from tests.tenancy.helpers import SCHEMA, KeyedChannel, binding_msg, role_msg, tenancy_stub

_Node = core_pb2.ExplanationNode


@dataclass
class Client:
    api: Api
    tenancy: Any


@dataclass
class Server:
    app: App
    channel: grpc.aio.Channel

    async def client(self, tenant: str) -> Client:
        record, token = new_key(tenant=tenant, scopes=frozenset(Scope))
        await self.app.store.keys.create(record)  # type: ignore[attr-defined]
        keyed = KeyedChannel(self.channel, token)
        return Client(Api(keyed), tenancy_stub(keyed))  # type: ignore[arg-type]


@pytest.fixture
async def server(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Server]:
    app = await start_app(server_settings(pg_dsn, tmp_path, auth=True, log_mode="buffered"))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield Server(app, channel)
    finally:
        await app.stop(grace=1.0)


def fresh(token: str) -> core_pb2.Consistency:
    return core_pb2.Consistency(at_least_as_fresh=core_pb2.ConsistencyToken(token=token))


async def check(
    c: Client, resource: str, permission: str, subject: str, token: str, **kw: Any
) -> permissions_pb2.CheckResponse:
    request = permissions_pb2.CheckRequest(
        tenant="acme",
        resource=obj(resource),
        permission=permission,
        subject=subj(subject),
        consistency=fresh(token),
        with_explanation=kw.pop("explain", False),
        **kw,
    )
    reply: permissions_pb2.CheckResponse = await c.api.permissions.Check(request)
    return reply


def kinds(node: core_pb2.ExplanationNode) -> list[Any]:
    found = [node.kind]
    for child in node.children:
        found += kinds(child)
    return found


def bindings_in(node: core_pb2.ExplanationNode) -> list[str]:
    found = [node.binding.binding_id] if node.kind == _Node.KIND_ROLE_BINDING else []
    for child in node.children:
        found += bindings_in(child)
    return [b for b in found if b]


async def lookup_resources(c: Client, subject: str, token: str) -> list[str]:
    request = permissions_pb2.LookupResourcesRequest(
        tenant="acme",
        resource_type="invoice",
        permission="pay",
        subject=subj(subject),
        consistency=fresh(token),
    )
    return [r.resource_id async for r in c.api.permissions.LookupResources(request)]


async def lookup_subjects(c: Client, resource: str, token: str) -> list[str]:
    request = permissions_pb2.LookupSubjectsRequest(
        tenant="acme",
        resource=obj(resource),
        permission="pay",
        subject_type="user",
        consistency=fresh(token),
    )
    return [r.subject_id async for r in c.api.permissions.LookupSubjects(request)]


@pytest.fixture
async def acme(server: Server) -> Client:
    platform = await server.client("*")
    await platform.api.write_schema(SCHEMA)
    return await server.client("acme")


@dataclass
class Story:
    token: str
    binding_id: str = ""


async def test_story(server: Server, acme: Client) -> None:
    token = await acme.api.touch(
        "acme",
        "folder:sub#parent@folder:invoices",
        "invoice:inv1#folder@folder:sub",
        "invoice:inv2#folder@folder:invoices",
        "invoice:elsewhere#folder@folder:misc",
        "user:alice#support@user:sam",
    )
    story = Story(token)

    await _bind(server, acme, story)
    await _member_pays(server, acme, story)
    await _impersonation(server, acme, story)
    await _suspension(server, acme, story)
    await _reactivation(server, acme, story)
    await _reach(server, acme, story)
    await _deprovision(server, acme, story)
    await _globex(server, acme, story)


async def _bind(server: Server, acme: Client, story: Story) -> None:
    """A custom role, bound to a group on a folder."""
    t = acme.tenancy
    token, binding_id = story.token, story.binding_id
    created = await t.CreateRole(
        tenancy_pb2.CreateRoleRequest(
            tenant="acme",
            role=role_msg("billing-admin", ["invoice.pay", "invoice.view", "invoice.approve"]),
        )
    )
    assert created.role.name == "billing-admin"
    assert not created.role.built_in
    bound = await t.CreateBinding(
        tenancy_pb2.CreateBindingRequest(
            tenant="acme",
            binding=binding_msg("billing-admin", "group:finance#member", "folder:invoices"),
        )
    )
    binding_id = bound.binding.binding_id
    assert binding_id
    token = bound.written_at.token
    assert (await check(acme, "invoice:inv1", "pay", "user:alice", token)).decision == DENIED
    story.token, story.binding_id = token, binding_id


async def _member_pays(server: Server, acme: Client, story: Story) -> None:
    """A user added to the group can pay an invoice in a subfolder, through the binding."""
    token, binding_id = story.token, story.binding_id
    token = await acme.api.touch("acme", "group:finance#member@user:alice")
    reply = await check(acme, "invoice:inv1", "pay", "user:alice", token, explain=True)
    assert reply.decision == ALLOWED
    assert bindings_in(reply.explanation.root) == [binding_id]
    assert (await check(acme, "invoice:elsewhere", "pay", "user:alice", token)).decision == DENIED
    assert await lookup_resources(acme, "user:alice", token) == ["inv1", "inv2"]
    assert await lookup_subjects(acme, "invoice:inv1", token) == ["alice"]
    story.token, story.binding_id = token, binding_id


async def _impersonation(server: Server, acme: Client, story: Story) -> None:
    """Support acts on her behalf, with a reason: allowed; non-delegable: denied."""
    token, binding_id = story.token, story.binding_id
    reply = await check(
        acme,
        "invoice:inv1",
        "pay",
        "user:alice",
        token,
        actor=subj("user:sam"),
        reason="ticket-42",
        explain=True,
    )
    assert reply.decision == ALLOWED
    assert (reply.actor.object.object_id, reply.reason) == ("sam", "ticket-42")
    assert _Node.KIND_IMPERSONATION in kinds(reply.explanation.root)
    assert (await check(acme, "invoice:inv1", "approve", "user:alice", token)).decision == ALLOWED
    reply = await check(
        acme,
        "invoice:inv1",
        "approve",
        "user:alice",
        token,
        actor=subj("user:sam"),
        reason="ticket-42",
    )
    assert reply.decision == DENIED
    assert reply.explanation.deny_reason == core_pb2.DENY_REASON_NON_DELEGABLE
    reply = await check(
        acme,
        "invoice:inv1",
        "pay",
        "user:alice",
        token,
        actor=subj("user:mallory"),
        reason="curious",
    )
    assert reply.decision == DENIED
    assert reply.explanation.deny_reason == core_pb2.DENY_REASON_IMPERSONATION_NOT_ALLOWED
    with pytest.raises(grpc.aio.AioRpcError) as missing_reason:
        await check(acme, "invoice:inv1", "pay", "user:alice", token, actor=subj("user:sam"))
    assert missing_reason.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    story.token, story.binding_id = token, binding_id


async def _suspension(server: Server, acme: Client, story: Story) -> None:
    """Suspension: denied everywhere from the returned token on, cached answers included."""
    t = acme.tenancy
    token, binding_id = story.token, story.binding_id
    warm = await check(acme, "invoice:inv1", "pay", "user:alice", token)
    assert warm.decision == ALLOWED
    suspended = await t.SuspendSubject(
        tenancy_pb2.SuspendSubjectRequest(
            tenant="acme", subject=obj("user:alice"), reason="scim: active=false"
        )
    )
    assert suspended.previous_status == tenancy_pb2.SUBJECT_STATUS_ACTIVE
    token = suspended.written_at.token
    for _ in range(2):  # the second is answered by the cache
        reply = await check(acme, "invoice:inv1", "pay", "user:alice", token, explain=True)
        assert reply.decision == DENIED
        assert reply.explanation.deny_reason == core_pb2.DENY_REASON_SUBJECT_SUSPENDED
        plain = await acme.api.permissions.Check(
            permissions_pb2.CheckRequest(
                tenant="acme",
                resource=obj("invoice:inv1"),
                permission="pay",
                subject=subj("user:alice"),
            )
        )
        assert plain.decision == DENIED
    bulk = await acme.api.permissions.CheckBulk(
        permissions_pb2.CheckBulkRequest(
            tenant="acme",
            consistency=fresh(token),
            items=[
                permissions_pb2.CheckBulkRequestItem(
                    resource=obj(f"invoice:{i}"), permission="pay", subject=subj("user:alice")
                )
                for i in ("inv1", "inv2")
            ],
        )
    )
    assert [i.result.decision for i in bulk.items] == [DENIED, DENIED]
    listed = await acme.api.permissions.ListPermissions(
        permissions_pb2.ListPermissionsRequest(
            tenant="acme",
            resource=obj("invoice:inv1"),
            subject=subj("user:alice"),
            consistency=fresh(token),
        )
    )
    assert {p.decision for p in listed.permissions} == {DENIED}
    assert await lookup_resources(acme, "user:alice", token) == []
    assert await lookup_subjects(acme, "invoice:inv1", token) == []
    status = await t.GetSubjectStatus(
        tenancy_pb2.GetSubjectStatusRequest(
            tenant="acme", subject=obj("user:alice"), consistency=fresh(token)
        )
    )
    assert status.status == tenancy_pb2.SUBJECT_STATUS_SUSPENDED
    assert status.reason == "scim: active=false"
    story.token, story.binding_id = token, binding_id


async def _reactivation(server: Server, acme: Client, story: Story) -> None:
    """Reactivation restores the access that still exists in the data."""
    t = acme.tenancy
    token, binding_id = story.token, story.binding_id
    reactivated = await t.ReactivateSubject(
        tenancy_pb2.ReactivateSubjectRequest(tenant="acme", subject=obj("user:alice"))
    )
    assert reactivated.previous_status == tenancy_pb2.SUBJECT_STATUS_SUSPENDED
    token = reactivated.written_at.token
    assert (await check(acme, "invoice:inv1", "pay", "user:alice", token)).decision == ALLOWED
    story.token, story.binding_id = token, binding_id


async def _reach(server: Server, acme: Client, story: Story) -> None:
    """The reach of the binding: exactly the invoices it opens, paginated."""
    t = acme.tenancy
    token, binding_id = story.token, story.binding_id
    reach = await t.GrantReach(
        tenancy_pb2.GrantReachRequest(tenant="acme", binding_id=binding_id, limit=1)
    )
    assert (reach.resource_count, reach.permission_count) == (2, 6)
    pages = [reach]
    while pages[-1].next_cursor.token:
        pages.append(
            await t.GrantReach(
                tenancy_pb2.GrantReachRequest(
                    tenant="acme", binding_id=binding_id, limit=1, cursor=pages[-1].next_cursor
                )
            )
        )
    reached = [
        (r.resource.object_id, list(r.permissions)) for page in pages for r in page.resources
    ]
    assert reached == [("inv1", ["view", "pay", "approve"]), ("inv2", ["view", "pay", "approve"])]
    story.token, story.binding_id = token, binding_id


async def _deprovision(server: Server, acme: Client, story: Story) -> None:
    """Deprovisioning removes her relationships and bindings, in one write, and says so."""
    t = acme.tenancy
    token, binding_id = story.token, story.binding_id
    direct = await t.CreateBinding(
        tenancy_pb2.CreateBindingRequest(
            tenant="acme", binding=binding_msg("auditor", "user:alice", "folder:misc")
        )
    )
    gone = await t.DeprovisionSubject(
        tenancy_pb2.DeprovisionSubjectRequest(
            tenant="acme", subject=obj("user:alice"), reason="scim: deleted"
        )
    )
    assert [
        (r.resource.object_type, r.resource.object_id, r.relation)
        for r in gone.removed_relationships
    ] == [("group", "finance", "member")]
    assert [b.binding_id for b in gone.removed_bindings] == [direct.binding.binding_id]
    token = gone.written_at.token
    reply = await check(acme, "invoice:inv1", "pay", "user:alice", token, explain=True)
    assert reply.explanation.deny_reason == core_pb2.DENY_REASON_SUBJECT_DEPROVISIONED
    left = await t.ListBindings(
        tenancy_pb2.ListBindingsRequest(tenant="acme", consistency=fresh(token))
    )
    assert [b.binding_id for b in left.bindings] == [binding_id]
    story.token, story.binding_id = token, binding_id


async def _globex(server: Server, acme: Client, story: Story) -> None:
    """A key for globex reads none of it."""
    token, binding_id = story.token, story.binding_id
    globex = await server.client("globex")
    refused = [
        globex.api.permissions.Check(
            permissions_pb2.CheckRequest(
                tenant="acme",
                resource=obj("invoice:inv1"),
                permission="pay",
                subject=subj("user:alice"),
            )
        ),
        globex.tenancy.ListRoles(tenancy_pb2.ListRolesRequest(tenant="acme")),
        globex.tenancy.ListBindings(tenancy_pb2.ListBindingsRequest(tenant="acme")),
        globex.tenancy.GrantReach(
            tenancy_pb2.GrantReachRequest(tenant="acme", binding_id=binding_id)
        ),
        globex.tenancy.GetSubjectStatus(
            tenancy_pb2.GetSubjectStatusRequest(tenant="acme", subject=obj("user:alice"))
        ),
    ]
    for call in refused:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await call
        assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    own = await globex.tenancy.ListRoles(tenancy_pb2.ListRolesRequest(tenant="globex"))
    assert [r.name for r in own.roles] == ["auditor"]  # built-in only: no acme role
    assert not (
        await globex.tenancy.ListBindings(tenancy_pb2.ListBindingsRequest(tenant="globex"))
    ).bindings
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await globex.tenancy.GrantReach(
            tenancy_pb2.GrantReachRequest(tenant="globex", binding_id=binding_id)
        )
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
    status = await globex.tenancy.GetSubjectStatus(
        tenancy_pb2.GetSubjectStatusRequest(tenant="globex", subject=obj("user:alice"))
    )
    assert status.status == tenancy_pb2.SUBJECT_STATUS_ACTIVE
    story.token, story.binding_id = token, binding_id
