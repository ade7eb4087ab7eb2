"""AuditService.ReplayDecisions on a real server and database: every logged check
replayed at its revision matches after the data is gone; against an altered schema
version exactly the flipped decisions differ; bounded by `limit`; bad input is named."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from authz_service.api.gen.authz.v1 import audit_pb2, audit_pb2_grpc, core_pb2
from tests.api.helpers import Api, bad_request_fields, obj, subj

from .helpers import (
    ALTERED_SCHEMA,
    RELATIONSHIPS,
    SCHEMA,
    LogSetup,
    Made,
    channel_to,
    make_decisions,
    running,
    setup_world,
)

Replay = audit_pb2.ReplayDecisionsRequest
VIA_FOLDER = ("document:roadmap", "view", "user:bob")  # the grant the altered schema drops


async def _replay(
    stub: audit_pb2_grpc.AuditServiceStub, **fields: object
) -> tuple[list[audit_pb2.ReplayedDecision], audit_pb2.ReplaySummary]:
    replies = [reply async for reply in stub.ReplayDecisions(Replay(**fields))]
    assert replies[-1].WhichOneof("item") == "summary"
    assert all(r.WhichOneof("item") == "decision" for r in replies[:-1])
    return [r.decision for r in replies[:-1]], replies[-1].summary


@pytest.fixture
async def made(log_setup: LogSetup) -> list[Made]:
    """Decisions of tenant `acme`; then its relationships are deleted."""
    async with asyncio.timeout(120), running(log_setup) as app, channel_to(app) as channel:
        api = Api(channel)
        await api.write_schema(SCHEMA)
        await setup_world(api, "acme")
        found = await make_decisions(channel, "acme")
        await api.delete("acme", *RELATIONSHIPS)
    return found


async def test_replay_matches_every_decision_after_the_data_is_gone(
    log_setup: LogSetup, made: list[Made]
) -> None:
    async with running(log_setup) as app, channel_to(app) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        replayed, summary = await _replay(stub, tenant="acme")
        assert [r.decision_id for r in replayed] == [m.decision_id for m in made]
        assert {r.outcome for r in replayed} == {audit_pb2.REPLAY_OUTCOME_MATCH}
        assert (summary.match_count, summary.differ_count, summary.cannot_replay_count) == (
            len(made),
            0,
            0,
        )
        assert not summary.truncated
        names = {core_pb2.DECISION_ALLOWED: "ALLOWED", core_pb2.DECISION_DENIED: "DENIED"}
        for replay, original in zip(replayed, made, strict=True):
            assert names[replay.recorded_decision] == original.decision
            assert replay.replayed_decision == replay.recorded_decision
            assert replay.decided_at.token == original.revision_token
        first = replayed[0]
        assert (first.subject.object.object_id, first.action, first.resource.object_id) == (
            "alice",
            "view",
            "spec",
        )

        # The limit bounds the work, and the summary says there was more.
        some, cut = await _replay(stub, tenant="acme", limit=3)
        assert [r.decision_id for r in some] == [m.decision_id for m in made[:3]]
        assert (cut.match_count, cut.truncated) == (3, True)

        # Filters: one subject; a time range after everything.
        bobs, _ = await _replay(stub, tenant="acme", subject=subj("user:bob"))
        assert {r.decision_id for r in bobs} == {
            m.decision_id for m in made if m.question[2] == "user:bob"
        }
        on_roadmap, _ = await _replay(stub, tenant="acme", resource=obj("document:roadmap"))
        assert len(on_roadmap) == sum(m.question[0] == "document:roadmap" for m in made)
        later = Replay(tenant="acme")
        later.start_time.FromDatetime(datetime.now(UTC) + timedelta(minutes=1))
        replies = [r async for r in stub.ReplayDecisions(later)]
        assert [r.summary.match_count for r in replies] == [0]

        # Another tenant's decisions are not replayed for this one.
        none, _ = await _replay(stub, tenant="globex")
        assert none == []


async def test_replay_against_an_altered_schema_shows_the_differences(
    log_setup: LogSetup, made: list[Made]
) -> None:
    async with running(log_setup) as app, channel_to(app) as channel:
        altered = await Api(channel).write_schema(ALTERED_SCHEMA, force=True)
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        replayed, summary = await _replay(stub, tenant="acme", schema_version=altered)
    differ = [r for r in replayed if r.outcome == audit_pb2.REPLAY_OUTCOME_DIFFERS]
    assert {r.decision_id for r in differ} == {
        m.decision_id for m in made if m.question == VIA_FOLDER
    }
    assert len(differ) == 2  # the Check and the CheckBulk item
    assert (summary.differ_count, summary.match_count) == (2, len(made) - 2)
    one = differ[0]
    assert (one.recorded_decision, one.replayed_decision) == (
        core_pb2.DECISION_ALLOWED,
        core_pb2.DECISION_DENIED,
    )
    assert one.recorded_reason.startswith("via document:roadmap#folder@folder:plans")
    assert "no relationship `document:roadmap#viewer` for `user:bob`" in one.replayed_reason
    assert {r.schema_version for r in replayed} == {altered}


async def test_a_replay_past_its_deadline_fails_as_such_never_as_complete(
    log_setup: LogSetup, made: list[Made]
) -> None:
    async with running(log_setup, default_deadline_ms=1) as app, channel_to(app) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        replies: list[audit_pb2.ReplayDecisionsResponse] = []

        async def collect() -> None:
            async for reply in stub.ReplayDecisions(Replay(tenant="acme")):
                replies.append(reply)

        with pytest.raises(grpc.aio.AioRpcError) as cut:
            await collect()
    assert cut.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # With 1 ms the time may run out during the replay (which suggests a shorter range) or
    # already while waiting for the database before it (seen under heavy load).
    details = cut.value.details() or ""
    assert "replay a shorter time range" in details or "waiting for the database" in details
    assert all(r.WhichOneof("item") == "decision" for r in replies)  # no summary
    assert len(replies) < len(made)


@pytest.mark.parametrize(
    ("fields", "code", "named"),
    [
        ({"limit": 10_001}, grpc.StatusCode.INVALID_ARGUMENT, "limit"),
        (
            {
                "subject": core_pb2.SubjectReference(
                    object=core_pb2.ObjectReference(object_type="user")
                )
            },
            grpc.StatusCode.INVALID_ARGUMENT,
            "subject.object.object_id",
        ),
        ({"schema_version": "0123456789abcdef"}, grpc.StatusCode.NOT_FOUND, ""),
        ({"tenant": ""}, grpc.StatusCode.INVALID_ARGUMENT, "tenant"),
    ],
)
async def test_bad_input_is_refused_naming_the_field(
    log_setup: LogSetup, fields: dict[str, object], code: grpc.StatusCode, named: str
) -> None:
    request = {"tenant": "acme", **fields}
    async with running(log_setup) as app, channel_to(app) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _replay(stub, **request)
    assert refused.value.code() == code
    if named:
        assert bad_request_fields(refused.value) == [named]
    else:  # not found: the message names the value
        assert "`0123456789abcdef`" in (refused.value.details() or "")


async def test_an_empty_time_range_is_refused_naming_end_time(log_setup: LogSetup) -> None:
    request = Replay(tenant="acme")
    now = datetime.now(UTC)
    request.start_time.FromDatetime(now)
    request.end_time.FromDatetime(now - timedelta(seconds=1))
    async with running(log_setup) as app, channel_to(app) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            [r async for r in stub.ReplayDecisions(request)]
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "`end_time` must be after `start_time`" in (refused.value.details() or "")
    assert bad_request_fields(refused.value) == ["end_time"]
