"""One isolation example over gRPC and PostgreSQL: everything tenant A answers stays the
same, at A's token, while tenant B writes colliding names (relationships, roles,
bindings, suspension, deprovisioning). The random version is test_properties.py."""

from __future__ import annotations

from typing import Any

import grpc

from authz_service.api.gen.authz.v1 import (
    core_pb2,
    permissions_pb2,
    relationships_pb2,
    tenancy_pb2,
)
from tests.api.helpers import Api, obj, subj
from tests.tenancy.helpers import SCHEMA, binding_msg, role_msg, tenancy_stub

DATA = (
    "folder:sub#parent@folder:invoices",
    "invoice:inv1#folder@folder:sub",
    "group:finance#member@user:alice",
    "user:alice#support@user:sam",
)


async def populate(api: Api, tenancy: Any, tenant: str, pay: bool) -> str:
    await api.touch(tenant, *DATA)
    perms = ["invoice.pay", "invoice.view"] if pay else ["invoice.view"]
    await tenancy.CreateRole(
        tenancy_pb2.CreateRoleRequest(tenant=tenant, role=role_msg("billing-admin", perms))
    )
    reply = await tenancy.CreateBinding(
        tenancy_pb2.CreateBindingRequest(
            tenant=tenant,
            binding=binding_msg("billing-admin", "group:finance#member", "folder:invoices"),
        )
    )
    return str(reply.written_at.token)


async def observe(api: Api, tenancy: Any, token: str) -> list[Any]:
    at = core_pb2.Consistency(at_exact_snapshot=core_pb2.ConsistencyToken(token=token))
    seen: list[Any] = []
    for user in ("alice", "bob"):
        for permission in ("pay", "view", "approve"):
            for _ in range(2):  # the second answer comes from the cache
                reply = await api.permissions.Check(
                    permissions_pb2.CheckRequest(
                        tenant="a",
                        resource=obj("invoice:inv1"),
                        permission=permission,
                        subject=subj(f"user:{user}"),
                        consistency=at,
                    )
                )
                seen.append((user, permission, reply.decision, reply.checked_at.token))
        listed = await api.permissions.ListPermissions(
            permissions_pb2.ListPermissionsRequest(
                tenant="a",
                resource=obj("invoice:inv1"),
                subject=subj(f"user:{user}"),
                consistency=at,
            )
        )
        seen.append([(p.permission, p.decision) for p in listed.permissions])
        found = api.permissions.LookupResources(
            permissions_pb2.LookupResourcesRequest(
                tenant="a",
                resource_type="invoice",
                permission="pay",
                subject=subj(f"user:{user}"),
                consistency=at,
            )
        )
        seen.append([r.resource_id async for r in found])
    subjects = api.permissions.LookupSubjects(
        permissions_pb2.LookupSubjectsRequest(
            tenant="a",
            resource=obj("invoice:inv1"),
            permission="pay",
            subject_type="user",
            consistency=at,
        )
    )
    seen.append([s.subject_id async for s in subjects])
    read = api.relationships.ReadRelationships(
        relationships_pb2.ReadRelationshipsRequest(tenant="a", consistency=at)
    )
    seen.append([str(r.relationship) async for r in read])
    seen.append(await tenancy.ListRoles(tenancy_pb2.ListRolesRequest(tenant="a", consistency=at)))
    seen.append(
        await tenancy.ListBindings(tenancy_pb2.ListBindingsRequest(tenant="a", consistency=at))
    )
    seen.append(
        await tenancy.GetSubjectStatus(
            tenancy_pb2.GetSubjectStatusRequest(
                tenant="a", subject=obj("user:alice"), consistency=at
            )
        )
    )
    return seen


async def test_tenant_b_changes_nothing_tenant_a_sees(channel: grpc.aio.Channel) -> None:
    api, tenancy = Api(channel), tenancy_stub(channel)
    await api.write_schema(SCHEMA)
    await api.create_tenants("a", "b")
    # Watch without `after` starts at the newest revision; its headers say it has started.
    watch = api.relationships.Watch(relationships_pb2.WatchRequest(tenant="a"))
    await watch.initial_metadata()
    token = await populate(api, tenancy, "a", pay=True)
    first = await watch.read()
    before = await observe(api, tenancy, token)
    assert before[0][2] == core_pb2.DECISION_ALLOWED  # alice may pay in A, via the binding

    await populate(api, tenancy, "b", pay=False)
    await tenancy.UpdateRole(
        tenancy_pb2.UpdateRoleRequest(tenant="b", role=role_msg("billing-admin", ["folder.view"]))
    )
    await tenancy.CreateBinding(
        tenancy_pb2.CreateBindingRequest(tenant="b", binding=binding_msg("auditor", "user:*"))
    )
    await tenancy.SuspendSubject(
        tenancy_pb2.SuspendSubjectRequest(tenant="b", subject=obj("user:alice"))
    )
    await tenancy.DeprovisionSubject(
        tenancy_pb2.DeprovisionSubjectRequest(tenant="b", subject=obj("user:sam"))
    )
    await tenancy.DeleteRole(
        tenancy_pb2.DeleteRoleRequest(tenant="b", name="billing-admin", cascade=True)
    )
    await api.touch("b", "invoice:inv1#owner@user:bob")

    assert await observe(api, tenancy, token) == before
    # A's latest answers are A's too: nothing B wrote shows up, not even in Watch
    latest = await api.check("a", "invoice:inv1", "pay", "user:alice", full=True)
    assert latest.decision == core_pb2.DECISION_ALLOWED
    assert latest.checked_at.token == token
    assert [c.relationship.resource.object_id for c in first.changes] == [
        "sub",
        "finance",
        "inv1",
        "alice",
    ]
    await api.touch("a", "invoice:inv9#owner@user:zed")
    second = await watch.read()  # A's next change, not any of B's
    while not second.changes:  # progress past A's role and binding rows (never shown)
        second = await watch.read()
    assert [str(c.relationship.resource.object_id) for c in second.changes] == ["inv9"]
    watch.cancel()
