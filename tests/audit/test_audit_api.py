"""AuditService over gRPC: tenant-scoped query (filters, limit, cursor), explain, verify."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from authz_service.api.gen.authz.v1 import audit_pb2, audit_pb2_grpc, core_pb2
from authz_service.decisionlog import generate_keypair
from tests.api.helpers import Api, subj

from .helpers import (
    SCHEMA,
    LogSetup,
    Made,
    channel_to,
    make_decisions,
    running,
    setup_world,
)

Query = audit_pb2.QueryDecisionsRequest


async def _query(
    stub: audit_pb2_grpc.AuditServiceStub, **fields: object
) -> list[audit_pb2.QueryDecisionsResponse]:
    return [reply async for reply in stub.QueryDecisions(Query(**fields))]


def _ids(replies: list[audit_pb2.QueryDecisionsResponse]) -> list[str]:
    return [r.record.decision_id for r in replies]


@pytest.fixture
async def made(log_setup: LogSetup) -> dict[str, list[Made]]:
    async with asyncio.timeout(120), running(log_setup) as app, channel_to(app) as channel:
        api = Api(channel)
        await api.write_schema(SCHEMA)
        found = {}
        for tenant in ("acme", "globex"):
            await setup_world(api, tenant)
            found[tenant] = await make_decisions(channel, tenant)
    return found


async def test_query_sees_only_the_tenants_records(
    log_setup: LogSetup, made: dict[str, list[Made]]
) -> None:
    async with running(log_setup) as app, channel_to(app) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        replies = await _query(stub, tenant="acme")
        acme = [m.decision_id for m in made["acme"]]
        assert _ids(replies)[1:] == acme  # after the admin record of the relationship write
        assert {r.record.tenant for r in replies} == {"acme"}
        assert [r.record.sequence for r in replies] == list(range(len(replies)))
        admin = replies[0].record
        assert admin.kind == audit_pb2.DECISION_KIND_ADMIN
        assert admin.decision == core_pb2.DECISION_ALLOWED  # applied
        assert admin.action == "/authz.v1.RelationshipsService/WriteRelationships"
        first = replies[1].record
        assert (first.subject.object.object_id, first.resource.object_id) == ("alice", "spec")
        assert first.previous_hash == admin.hash

        bob_denied = await _query(
            stub, tenant="acme", subject=subj("user:bob"), decision=core_pb2.DECISION_DENIED
        )
        assert {
            m.decision_id
            for m in made["acme"]
            if m.question[2] == "user:bob" and m.decision == "DENIED"
        } == set(_ids(bob_denied))
        on_behalf = await _query(stub, tenant="acme", actor=subj("user:sam"))
        assert [r.record.reason for r in on_behalf] == ["ticket 4711"]
        assert on_behalf[0].record.actor.object.object_id == "sam"
        bulk = await _query(stub, tenant="acme", kind=audit_pb2.DECISION_KIND_CHECK_BULK_ITEM)
        assert len(bulk) == 6
        allowed = await _query(stub, tenant="acme", decision=core_pb2.DECISION_ALLOWED)
        assert admin.decision_id in _ids(allowed)  # APPLIED reads as ALLOWED
        start = replies[3].record.time.ToDatetime(UTC)
        window = await _query(stub, tenant="acme", start_time=replies[3].record.time)
        assert _ids(window) == [
            r.record.decision_id for r in replies if r.record.time.ToDatetime(UTC) >= start
        ]
        later = datetime.now(UTC) + timedelta(days=1)
        future = Query(tenant="acme")
        future.start_time.FromDatetime(later)
        assert [r async for r in stub.QueryDecisions(future)] == []

        # limit + cursor: the rest, without repeats
        page = await _query(stub, tenant="acme", limit=4)
        rest = await _query(stub, tenant="acme", cursor=page[-1].cursor)
        assert _ids(page) + _ids(rest) == _ids(replies)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _query(stub, tenant="globex", cursor=page[-1].cursor)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        # the other tenant's records do not exist for acme
        globex_ids = {m.decision_id for m in made["globex"]}
        assert not globex_ids & set(_ids(replies))
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.ExplainDecision(
                audit_pb2.ExplainDecisionRequest(
                    tenant="acme", decision_id=made["globex"][0].decision_id
                )
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_explain_returns_the_recorded_path(
    log_setup: LogSetup, made: dict[str, list[Made]]
) -> None:
    async with running(log_setup) as app, channel_to(app) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        explained = made["acme"][6]  # with_explanation
        reply = await stub.ExplainDecision(
            audit_pb2.ExplainDecisionRequest(tenant="acme", decision_id=explained.decision_id)
        )
    record = reply.record
    assert record.decision == core_pb2.DECISION_ALLOWED
    root = record.explanation.root
    assert (root.kind, root.relation) == (core_pb2.ExplanationNode.KIND_PERMISSION, "view")
    relationships = []
    stack = [root]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.HasField("relationship"):
            relationships.append(node.relationship.subject.object.object_id)
    assert "alice" in relationships
    assert record.decided_at.token == explained.revision_token


async def test_verify_log_reports_the_first_bad_record(
    log_setup: LogSetup, made: dict[str, list[Made]], tmp_path: Path
) -> None:
    segment = log_setup.log_dir / "acme" / "000001.jsonl"
    lines = segment.read_bytes().splitlines()
    edited = lines[3].replace(b'"latency_us":', b'"latency_us":1', 1)  # stays canonical
    segment.write_bytes(b"".join(x + b"\n" for x in [*lines[:3], edited, *lines[4:]]))
    _, other_key = generate_keypair(tmp_path / "other")

    async with running(log_setup) as app, channel_to(app) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        good = await stub.VerifyLog(audit_pb2.VerifyLogRequest(tenant="globex"))
        bad = await stub.VerifyLog(audit_pb2.VerifyLogRequest(tenant="acme"))
        foreign = await stub.VerifyLog(
            audit_pb2.VerifyLogRequest(tenant="globex", public_key_pem=other_key.read_text())
        )
        with pytest.raises(grpc.aio.AioRpcError) as damaged:
            await _query(stub, tenant="acme")
    assert good.verified
    assert good.record_count == len(made["globex"]) + 1
    assert good.checkpoint_count == 2  # the first run's close and this run's start
    assert good.HasField("latest_checkpoint_time")
    assert not bad.verified
    problem = bad.first_problem
    assert problem.kind == audit_pb2.LogProblem.KIND_CHAIN_BROKEN
    assert (problem.sequence, problem.decision_id) == (3, made["acme"][2].decision_id)
    assert "000001.jsonl:4" in problem.description
    assert str(log_setup.log_dir) not in problem.description  # no server paths
    assert not foreign.verified
    assert foreign.first_problem.kind == audit_pb2.LogProblem.KIND_BAD_SIGNATURE
    # The result per stream (one per server worker; one worker here).
    assert [(s.stream, s.verified, s.record_count) for s in good.streams] == [
        ("globex", True, good.record_count)
    ]
    assert [(s.stream, s.verified) for s in bad.streams] == [("acme", False)]
    assert bad.streams[0].first_problem == problem
    assert damaged.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert str(log_setup.log_dir) not in (damaged.value.details() or "")


async def test_verify_log_fails_a_renamed_stream_and_skips_no_stray(
    log_setup: LogSetup, made: dict[str, list[Made]]
) -> None:
    assert made["globex"]
    (log_setup.log_dir / "globex").rename(log_setup.log_dir / "%67lobex")  # decodes to globex
    (log_setup.log_dir / "%ff").mkdir()  # decodes to nothing
    # A server that writes no log of its own (its writer would start `globex` again).
    async with running(log_setup, log_mode="off") as app, channel_to(app) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        renamed = await stub.VerifyLog(audit_pb2.VerifyLogRequest(tenant="globex"))
        unrelated = await stub.VerifyLog(audit_pb2.VerifyLogRequest(tenant="acme"))
        globex = await _query(stub, tenant="globex")
        acme = await _query(stub, tenant="acme")
    assert not renamed.verified
    assert [(s.stream, s.verified) for s in renamed.streams] == [
        ("%67lobex", False),
        ("globex", False),
    ]
    stray, missing = (s.first_problem for s in renamed.streams)
    assert stray.kind == audit_pb2.LogProblem.KIND_MALFORMED
    assert "`%67lobex` is not a stream" in stray.description
    assert missing.kind == audit_pb2.LogProblem.KIND_TRUNCATED
    assert globex == []  # only the writer's own directory is read
    # `%ff` is nobody's: it neither fails nor breaks another tenant's calls.
    assert unrelated.verified
    assert [(s.stream, s.verified) for s in unrelated.streams] == [("acme", True)]
    assert len(acme) == len(made["acme"]) + 1  # and the admin record of the write


async def test_verify_log_reports_records_left_unsigned(
    log_setup: LogSetup, made: dict[str, list[Made]]
) -> None:
    assert made["acme"]
    (log_setup.log_dir / "checkpoints.jsonl").unlink()  # every checkpoint of the root
    # A server that writes no log of its own (its writer would sign what it finds).
    async with running(log_setup, log_mode="off") as app, channel_to(app) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        reply = await stub.VerifyLog(audit_pb2.VerifyLogRequest(tenant="acme"))
    assert not reply.verified
    assert reply.checkpoint_count == 0
    problem = reply.first_problem
    assert problem.kind == audit_pb2.LogProblem.KIND_UNSIGNED
    first = json.loads((log_setup.log_dir / "acme" / "000001.jsonl").read_bytes().split(b"\n")[0])
    assert (problem.sequence, problem.decision_id) == (0, first["decision_id"])
    assert "no valid checkpoint" in problem.description


async def test_verify_log_needs_a_key(log_setup: LogSetup) -> None:
    async with running(log_setup, log_signing_key="") as app, channel_to(app) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.VerifyLog(audit_pb2.VerifyLogRequest(tenant="acme"))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
