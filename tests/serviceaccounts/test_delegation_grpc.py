"""An agent acting for a user, over gRPC: the decision is the intersection of the
agent's and the user's permissions (and of every agent of a longer chain), the chain is
in the explanation and in the decision record, and cached answers never cross chains."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from authz_service.api.gen.authz.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    core_pb2,
    permissions_pb2,
    tenancy_pb2,
    tenancy_pb2_grpc,
)
from authz_service.app import App
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import ALLOWED, DENIED, Api, bad_request_fields, obj, subj
from tests.audit.helpers import run_cli
from tests.serviceaccounts.helpers import SCHEMA, delegated

_Node = core_pb2.ExplanationNode


async def _world(channel: grpc.aio.Channel) -> tuple[Api, str]:
    api = Api(channel)
    await api.write_schema(SCHEMA)
    token = await api.touch(
        "acme",
        "document:plan#viewer@user:alice",
        "document:plan#viewer@serviceaccount:bot",
        "document:memo#viewer@serviceaccount:bot",
        "document:plan#editor@user:alice",
        "document:plan#editor@serviceaccount:bot",
        "document:plan#viewer@serviceaccount:helper",
    )
    return api, token


def _subjects(node: core_pb2.ExplanationNode) -> list[str]:
    return [f"{c.subject.object.object_type}:{c.subject.object.object_id}" for c in node.children]


async def test_agent_allowed_and_user_denied_is_denied(channel: grpc.aio.Channel) -> None:
    api, token = await _world(channel)
    reply = await api.permissions.Check(
        delegated(
            token,
            "document:memo",
            "view",
            "user:alice",
            "serviceaccount:bot",
            with_explanation=True,
        )
    )
    assert reply.decision == DENIED
    root = reply.explanation.root
    assert root.kind == _Node.KIND_DELEGATION
    assert _subjects(root) == ["user:alice"]  # the chain stops at its first denial
    assert reply.explanation.deny_reason == core_pb2.DENY_REASON_NO_GRANT
    assert [a.object.object_id for a in reply.agents] == ["bot"]


async def test_user_allowed_and_agent_denied_is_denied(channel: grpc.aio.Channel) -> None:
    api, token = await _world(channel)
    alone = await api.check("acme", "document:plan", "edit", "user:alice", fresh=token)
    assert alone.decision == ALLOWED
    reply = await api.permissions.Check(
        delegated(token, "document:plan", "edit", "user:alice", "serviceaccount:helper")
    )
    assert reply.decision == DENIED
    # A denial always says why, explanation asked for or not.
    assert reply.explanation.deny_reason == core_pb2.DENY_REASON_AGENT_NOT_ALLOWED
    assert _subjects(reply.explanation.root) == ["user:alice", "serviceaccount:helper"]


async def test_both_allowed_is_allowed_with_the_chain_explained(
    channel: grpc.aio.Channel,
) -> None:
    api, token = await _world(channel)
    reply = await api.permissions.Check(
        delegated(
            token,
            "document:plan",
            "edit",
            "user:alice",
            "serviceaccount:bot",
            with_explanation=True,
        )
    )
    assert reply.decision == ALLOWED
    root = reply.explanation.root
    assert root.kind == _Node.KIND_DELEGATION
    assert root.result == ALLOWED
    assert _subjects(root) == ["user:alice", "serviceaccount:bot"]
    assert all(child.result == ALLOWED for child in root.children)
    assert "user:alice > serviceaccount:bot" in root.reason


async def test_a_longer_chain_needs_every_agent(channel: grpc.aio.Channel) -> None:
    api, token = await _world(channel)
    chain = ("serviceaccount:bot", "serviceaccount:helper")
    view = await api.permissions.Check(
        delegated(token, "document:plan", "view", "user:alice", *chain)
    )
    edit = await api.permissions.Check(
        delegated(token, "document:plan", "edit", "user:alice", *chain)
    )
    assert view.decision == ALLOWED  # all three view the plan
    assert edit.decision == DENIED  # helper does not edit it
    assert _subjects(edit.explanation.root)[-1] == "serviceaccount:helper"


async def test_cached_answers_do_not_cross_chains(channel: grpc.aio.Channel) -> None:
    api, token = await _world(channel)
    request = lambda *agents: delegated(token, "document:plan", "edit", "user:alice", *agents)  # noqa: E731
    # Each question twice, interleaved: the second of each may come from the cache.
    for _ in range(2):
        assert (await api.permissions.Check(request())).decision == ALLOWED
        assert (await api.permissions.Check(request("serviceaccount:bot"))).decision == ALLOWED
        denied = await api.permissions.Check(request("serviceaccount:helper"))
        assert denied.decision == DENIED
        longer = await api.permissions.Check(request("serviceaccount:bot", "serviceaccount:helper"))
        assert longer.decision == DENIED
        swapped = await api.permissions.Check(
            request("serviceaccount:helper", "serviceaccount:bot")
        )
        assert swapped.decision == DENIED


async def test_non_delegable_and_suspended_agents_are_denied(channel: grpc.aio.Channel) -> None:
    api, token = await _world(channel)
    nondelegable = await api.permissions.Check(
        delegated(token, "document:plan", "delete", "user:alice", "serviceaccount:bot")
    )
    assert nondelegable.decision == DENIED
    assert nondelegable.explanation.deny_reason == core_pb2.DENY_REASON_NON_DELEGABLE
    tenancy = tenancy_pb2_grpc.TenancyServiceStub(channel)
    suspended = await tenancy.SuspendSubject(
        tenancy_pb2.SuspendSubjectRequest(
            tenant="acme", subject=obj("serviceaccount:bot"), reason="compromised"
        )
    )
    reply = await api.permissions.Check(
        delegated(
            suspended.written_at.token, "document:plan", "view", "user:alice", "serviceaccount:bot"
        )
    )
    assert reply.decision == DENIED
    assert reply.explanation.deny_reason == core_pb2.DENY_REASON_AGENT_NOT_ALLOWED


async def test_check_bulk_intersects_every_item(channel: grpc.aio.Channel) -> None:
    api, _ = await _world(channel)
    items = [
        permissions_pb2.CheckBulkRequestItem(
            resource=obj(resource), permission=permission, subject=subj("user:alice")
        )
        for resource, permission in (("document:plan", "edit"), ("document:memo", "view"))
    ]
    reply = await api.permissions.CheckBulk(
        permissions_pb2.CheckBulkRequest(
            tenant="acme",
            items=items,
            agents=[subj("serviceaccount:bot")],
            consistency=core_pb2.Consistency(fully_consistent=True),
        )
    )
    assert [i.result.decision for i in reply.items] == [ALLOWED, DENIED]


@pytest.mark.parametrize(
    ("agents", "actor", "field"),
    [
        (["group:eng#member"], None, "agents[0]"),
        (["serviceaccount:bot", "document:plan#viewer"], None, "agents[1]"),
        (["robot:r2"], None, "agents[0]"),
        (["serviceaccount:*"], None, "agents[0]"),
        (["serviceaccount:bot"], "user:alice", "agents"),
        ([f"serviceaccount:a{i}" for i in range(9)], None, "agents"),
    ],
)
async def test_bad_chains_name_the_field(
    channel: grpc.aio.Channel, agents: list[str], actor: str | None, field: str
) -> None:
    api, token = await _world(channel)
    request = delegated(token, "document:plan", "view", "user:alice", *agents)
    if actor is not None:
        request.actor.CopyFrom(subj(actor))
        request.reason = "support ticket 7"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.permissions.Check(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(caught.value) == [field]


async def test_the_chain_is_in_the_decision_record(pg_dsn: str, tmp_path: Path) -> None:
    app: App = await start_app(server_settings(pg_dsn, tmp_path, log_mode="durable"))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            api, token = await _world(channel)
            chain = ("serviceaccount:bot", "serviceaccount:helper")
            reply = await api.permissions.Check(
                delegated(token, "document:plan", "view", "user:alice", *chain)
            )
            audit = audit_pb2_grpc.AuditServiceStub(channel)
            found = [
                r.record
                async for r in audit.QueryDecisions(
                    audit_pb2.QueryDecisionsRequest(
                        tenant="acme", actor=subj("serviceaccount:helper")
                    )
                )
            ]
    finally:
        await app.stop(grace=1.0)
    assert [r.decision_id for r in found] == [reply.decision_id]
    record = json_format.MessageToDict(found[0].details)
    assert record == {"agents": list(chain)}
    assert found[0].subject.object.object_id == "alice"
    # Replay reads the chain back: judged as a delegation, not as an impersonation by
    # the last agent (which would be DENIED: nobody may impersonate alice here).
    status, out, err = await asyncio.to_thread(
        run_cli, "audit", "replay", "--log-dir", str(tmp_path / "decisions"),
        "--database-url", pg_dsn, "--tenant", "acme", "--actor", "serviceaccount:helper",
    )  # fmt: skip
    assert status == 0, err
    assert out.splitlines()[-1] == "1 replayed, 0 differ, 0 could not be replayed"
