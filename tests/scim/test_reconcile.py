"""Reconciliation over gRPC (TenancyService.GetScimSync / RepairScimDrift) and the CLI,
against a real server on PostgreSQL after SCIM pushes over HTTP."""

from __future__ import annotations

import asyncio

import pytest

from authz_service.api.gen.authz.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    tenancy_pb2,
    tenancy_pb2_grpc,
)
from authz_service.cli import main
from authz_service.credentials import Scope
from tests.api.helpers import ALLOWED, DENIED, Api, obj
from tests.scim.conftest import ScimServer
from tests.scim.test_okta_story import patch
from tests.scim.test_protocol import create, group, user


def rels(items: object) -> list[str]:
    found = []
    for r in items:  # type: ignore[attr-defined]
        subject = f"{r.subject.object.object_type}:{r.subject.object.object_id}"
        found.append(f"{r.resource.object_type}:{r.resource.object_id}#{r.relation}@{subject}")
    return found


def objs(items: object) -> list[str]:
    return [f"{o.object_type}:{o.object_id}" for o in items]  # type: ignore[attr-defined]


async def test_drift_is_reported_and_repaired(scim: ScimServer) -> None:
    keyed = await scim.keyed()
    api = Api(keyed)  # type: ignore[arg-type]
    tenancy = tenancy_pb2_grpc.TenancyServiceStub(keyed)  # type: ignore[arg-type]
    async with await scim.http() as http:
        a = await create(http, "/Users", user("a@acme.example", active=True))
        b = await create(http, "/Users", user("b@acme.example", active=True))
        g = await create(http, "/Groups", group("eng", a))
        await api.touch("acme", f"document:plan#viewer@group:{g}#member")
        taken = await http.post("/Users", json=user("A@acme.example"))
        assert taken.status_code == 409

        sync = await tenancy.GetScimSync(tenancy_pb2.GetScimSyncRequest(tenant="acme"))
        assert sync.drift == tenancy_pb2.ScimDrift()
        status = sync.status
        assert (status.users, status.active_users, status.groups, status.memberships) == (
            2,
            2,
            1,
            1,
        )
        assert status.HasField("last_push")
        assert status.HasField("last_change")
        assert "already taken" in status.last_error

        # Around SCIM: a membership written directly, one of a SCIM user the IdP does not
        # assert, one the IdP asserts deleted; a suspension and a reactivation.
        await api.touch("acme", f"group:{g}#member@user:outsider", f"group:{g}#member@user:{b}")
        await api.delete("acme", f"group:{g}#member@user:{a}")
        off = patch({"op": "replace", "value": {"active": False}})
        assert (await http.patch(f"/Users/{a}", json=off)).status_code == 204
    await tenancy.ReactivateSubject(
        tenancy_pb2.ReactivateSubjectRequest(tenant="acme", subject=obj(f"user:{a}"), reason="x")
    )
    await tenancy.SuspendSubject(
        tenancy_pb2.SuspendSubjectRequest(tenant="acme", subject=obj(f"user:{b}"), reason="x")
    )

    drift = (await tenancy.GetScimSync(tenancy_pb2.GetScimSyncRequest(tenant="acme"))).drift
    assert objs(drift.deactivated_upstream) == [f"user:{a}"]
    assert objs(drift.inactive_here) == [f"user:{b}"]
    assert rels(drift.removed_upstream) == [f"group:{g}#member@user:{b}"]
    assert rels(drift.written_outside) == [f"group:{g}#member@user:outsider"]
    assert rels(drift.missing_here) == [f"group:{g}#member@user:{a}"]

    repaired = await tenancy.RepairScimDrift(
        tenancy_pb2.RepairScimDriftRequest(tenant="acme", reason="weekly check")
    )
    assert repaired.repaired == drift
    token = repaired.written_at.token
    after = await tenancy.GetScimSync(tenancy_pb2.GetScimSyncRequest(tenant="acme"))
    assert after.drift == tenancy_pb2.ScimDrift()
    for who, expected in ((a, DENIED), ("outsider", DENIED), (b, DENIED)):
        reply = await api.check("acme", "document:plan", "view", f"user:{who}", fresh=token)
        assert reply.decision == expected, who

    audit = audit_pb2_grpc.AuditServiceStub(keyed)  # type: ignore[arg-type]
    request = audit_pb2.QueryDecisionsRequest(tenant="acme", kind=audit_pb2.DECISION_KIND_ADMIN)
    reasons = [r.record.reason async for r in audit.QueryDecisions(request)]
    assert reasons.count("scim repair: weekly check") == 3  # the write, a suspend, a reactivate


async def test_repair_of_nothing_changes_nothing(scim: ScimServer) -> None:
    keyed = await scim.keyed()
    tenancy = tenancy_pb2_grpc.TenancyServiceStub(keyed)  # type: ignore[arg-type]
    async with await scim.http() as http:
        u = await create(http, "/Users", user("c@acme.example"))
        await create(http, "/Groups", group("ops", u))
    before = await tenancy.GetScimSync(tenancy_pb2.GetScimSyncRequest(tenant="acme"))
    repaired = await tenancy.RepairScimDrift(
        tenancy_pb2.RepairScimDriftRequest(tenant="acme", reason="noop")
    )
    assert repaired.repaired == tenancy_pb2.ScimDrift()
    assert repaired.written_at == before.read_at


async def test_the_cli_reports_and_repairs(
    scim: ScimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    token = await scim.key("acme", *Scope)
    api = await scim.api()
    async with await scim.http() as http:
        g = await create(http, "/Groups", group("eng"))
    await api.touch("acme", f"group:{g}#member@user:outsider")
    address = f"127.0.0.1:{scim.app.port}"
    common = ["--tenant", "acme", "--server", address, "--api-key", token]

    status = await asyncio.to_thread(main, ["scim", "status", *common])
    out = capsys.readouterr().out
    assert status == 1  # drift found
    assert f"written outside SCIM: group:{g}#member@user:outsider" in out
    assert "users 0 (0 active), groups 1, memberships 0" in out

    status = await asyncio.to_thread(main, ["scim", "repair", *common, "--reason", "cli"])
    out = capsys.readouterr().out
    assert status == 0
    assert f"repaired: written outside SCIM: group:{g}#member@user:outsider" in out
    status = await asyncio.to_thread(main, ["scim", "status", *common])
    assert status == 0
    assert "no drift" in capsys.readouterr().out
    reply = await api.check("acme", f"group:{g}", "member", "user:outsider", full=True)
    assert reply.decision != ALLOWED


async def test_a_refusal_of_another_tenants_key_is_not_the_tenants_sync_status(
    scim: ScimServer,
) -> None:
    # The status keeps "the last refused one" of the tenant's IdP. A key bound to another
    # tenant (anyone's, as a 401 is) overwrote it; a key of this tenant lacking the
    # scim scope is the IdP's own misconfiguration, and is still reported.
    tenancy = tenancy_pb2_grpc.TenancyServiceStub(await scim.keyed())  # type: ignore[arg-type]
    async with await scim.http() as http:
        taken = await http.post("/Users", json=user("dup@acme.example"))
        assert taken.status_code == 201
        assert (await http.post("/Users", json=user("dup@acme.example"))).status_code == 409
    before = (await tenancy.GetScimSync(tenancy_pb2.GetScimSyncRequest(tenant="acme"))).status
    assert "already taken" in before.last_error
    async with await scim.http("globex") as stranger:
        refused = await stranger.post(f"{scim.base}/acme/Users", json=user("x@y.example"))
        assert refused.status_code == 403
    after = (await tenancy.GetScimSync(tenancy_pb2.GetScimSyncRequest(tenant="acme"))).status
    assert after.last_error == before.last_error
    assert after.last_error_time == before.last_error_time
