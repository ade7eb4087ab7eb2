"""`authz audit replay` and `authz audit explain` against the real database.

Decisions are logged, then the relationships behind them are deleted: replay at the
recorded revisions reproduces every answer. Replayed against a deliberately altered
schema version, it reports exactly the decisions the change would have flipped. Once
garbage collection has removed the old revisions, their decisions are reported as not
replayable, never as matches.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest

from authz_service.api.gen.authz.v1 import permissions_pb2
from authz_service.store import postgres
from tests.api.helpers import Api, obj, rel, subj

from .helpers import (
    ALTERED_SCHEMA,
    QUESTIONS,
    RELATIONSHIPS,
    SCHEMA,
    LogSetup,
    Made,
    channel_to,
    check,
    make_decisions,
    run_cli,
    running,
    setup_world,
)

VIA_FOLDER = ("document:roadmap", "view", "user:bob")  # the one grant the altered schema drops


async def _replay(setup: LogSetup, *extra: str) -> tuple[int, list[str], str]:
    status, out, err = await asyncio.to_thread(
        run_cli, "audit", "replay", "--log-dir", str(setup.log_dir),
        "--database-url", setup.dsn, *extra,
    )  # fmt: skip
    return status, out.splitlines(), err


async def _explain(setup: LogSetup, decision_id: str, *extra: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(
        run_cli, "audit", "explain", decision_id, "--log-dir", str(setup.log_dir), *extra
    )


async def _log_world(setup: LogSetup) -> tuple[list[Made], list[Made]]:
    """(decisions made before the deletion, decisions made after it)."""
    async with asyncio.timeout(120), running(setup) as app, channel_to(app) as channel:
        api = Api(channel)
        await api.write_schema(SCHEMA)
        await setup_world(api, "acme")
        before = await make_decisions(channel, "acme")
        await api.touch("acme", "document:spec#viewer@user:bob")  # a second revision
        before.append(await check(api, "acme", QUESTIONS[1]))  # now ALLOWED
        await api.delete("acme", *RELATIONSHIPS, "document:spec#viewer@user:bob")
        after = [await check(api, "acme", q) for q in QUESTIONS]
    assert {m.decision for m in before} == {"ALLOWED", "DENIED"}
    assert {m.decision for m in after} == {"DENIED"}  # the data is gone
    return before, after


@pytest.fixture
async def world(
    log_setup: LogSetup, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Made], list[Made]]:
    monkeypatch.delenv("AUTHZ_DATABASE_URL", raising=False)  # only what a test passes
    return await _log_world(log_setup)


async def test_replay_reproduces_every_answer_after_the_data_is_gone(
    log_setup: LogSetup, world: tuple[list[Made], list[Made]]
) -> None:
    before, after = world
    status, lines, err = await _replay(log_setup)
    total = len(before) + len(after)
    assert lines[-1] == f"{total} replayed, 0 differ, 0 could not be replayed", lines
    assert status == 0
    assert "replay: 100%" in err  # the progress bar, on stderr


async def test_replay_against_an_altered_schema_reports_the_differences(
    log_setup: LogSetup, world: tuple[list[Made], list[Made]]
) -> None:
    before, after = world
    async with running(log_setup) as app, channel_to(app) as channel:
        altered = await Api(channel).write_schema(ALTERED_SCHEMA, force=True)
    status, lines, _ = await _replay(log_setup, "--schema-version", altered)
    assert status == 1
    flipped = {m.decision_id for m in before if m.question == VIA_FOLDER}
    assert len(flipped) == 2  # the Check and the CheckBulk item
    assert {line.split()[1] for line in lines if line.startswith("DIFFERS")} == flipped
    total = len(before) + len(after)
    assert lines[-1] == f"{total} replayed, 2 differ, 0 could not be replayed"
    report = "\n".join(lines)
    assert f"replayed with schema {altered}" in report
    assert (
        "recorded: ALLOWED, via document:roadmap#folder@folder:plans, "
        "folder:plans#viewer@user:bob (re-derived by replay)"
    ) in report
    assert "replayed: DENIED, no relationship `document:roadmap#viewer` for `user:bob`" in report
    # Filters select what is replayed.
    status, lines, _ = await _replay(
        log_setup, "--schema-version", altered, "--subject", "user:alice", "--kind", "check"
    )
    assert (status, lines[-1]) == (0, "6 replayed, 0 differ, 0 could not be replayed")
    status, _, err = await _replay(log_setup, "--schema-version", "0123456789abcdef")
    assert status == 2
    assert "schema version `0123456789abcdef` does not exist" in err


async def test_explain_prints_the_recorded_or_a_replayed_path(
    log_setup: LogSetup, world: tuple[list[Made], list[Made]]
) -> None:
    before, _ = world
    explained = before[len(QUESTIONS)]  # the check made with_explanation
    status, out, _ = await _explain(log_setup, explained.decision_id)
    assert status == 0
    assert "explanation (recorded):" in out
    assert "ALLOWED     relationship group:eng#member@user:alice" in out
    (why,) = [line for line in out.splitlines() if line.startswith("why ")]
    assert why.endswith("via document:spec#viewer@group:eng#member, group:eng#member@user:alice")

    plain = before[2]  # bob views the roadmap through the folder; no explanation kept
    status, out, _ = await _explain(log_setup, plain.decision_id)
    assert status == 1
    assert "pass --database-url to re-derive it by replay" in out
    status, out, _ = await _explain(log_setup, plain.decision_id, "--database-url", log_setup.dsn)
    assert status == 0, out
    assert "explanation (re-derived by replay at revision 1, schema " in out
    assert "ALLOWED     relationship folder:plans#viewer@user:bob" in out

    status, _, err = await _explain(log_setup, "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert status == 2
    assert "is not in the decision log" in err


async def test_collected_revisions_cannot_be_replayed(
    log_setup: LogSetup, world: tuple[list[Made], list[Made]]
) -> None:
    before, after = world
    # A tiny retention window: the history of every revision but the head goes.
    store = await postgres.connect(log_setup.dsn)
    try:
        result = await store.collect_garbage(timedelta(milliseconds=1))
    finally:
        await store.close()
    assert result.ran
    assert result.relationships > 0

    status, lines, _ = await _replay(log_setup)
    assert status == 1
    assert lines[-1] == f"{len(after)} replayed, 0 differ, {len(before)} could not be replayed"
    cannot = [line for line in lines if line.startswith("CANNOT REPLAY")]
    assert len(cannot) == len(before)
    assert all("collected: it is older than the retention window" in line for line in cannot)
    status, out, _ = await _explain(
        log_setup, before[2].decision_id, "--database-url", log_setup.dsn
    )
    assert status == 1
    assert "cannot be re-derived by replay: revision 1 collected" in out


async def test_incomplete_records_are_not_replayed(log_setup: LogSetup) -> None:
    async with running(log_setup, log_redact="$.ssn") as app, channel_to(app) as channel:
        api = Api(channel)
        await api.write_schema(SCHEMA)
        await setup_world(api, "acme")
        redacted = await check(api, "acme", QUESTIONS[0], context={"ssn": "078-05-1120"})
        clean = await check(api, "acme", QUESTIONS[0], context={"region": "eu"})
        request = _check_request("acme", QUESTIONS[1])
        request_only = await api.permissions.Check(request)
        request.contextual_relationships.append(rel("document:spec#viewer@user:bob"))
        with_contextual = await api.permissions.Check(request)
    assert request_only.decision != with_contextual.decision  # the tuple mattered

    status, lines, _ = await _replay(log_setup)
    assert status == 1
    assert lines[-1] == "2 replayed, 0 differ, 2 could not be replayed"
    report = "\n".join(lines)
    assert f"CANNOT REPLAY {redacted.decision_id}" in report
    assert "context redacted ($.ssn)" in report
    assert f"CANNOT REPLAY {with_contextual.decision_id}" in report
    assert "contextual relationships were not recorded" in report
    assert clean.decision_id not in report


def _check_request(tenant: str, question: tuple[str, str, str]) -> permissions_pb2.CheckRequest:
    resource, permission, subject = question
    return permissions_pb2.CheckRequest(
        tenant=tenant, resource=obj(resource), permission=permission, subject=subj(subject)
    )


# A caveat only the request's own relationship carries: its evaluation fails with this
# context, and without that relationship there is nothing to fail.
CAVEATED = (
    SCHEMA
    + """
caveat small(n int) { n < 3 }
definition box {
    relation viewer: user with small
    permission view = viewer
}
"""
)


async def test_failed_decisions_with_contextual_relationships_are_not_replayed(
    log_setup: LogSetup,
) -> None:
    contextual = rel("box:b#viewer@user:a[small]")
    async with asyncio.timeout(120), running(log_setup) as app, channel_to(app) as channel:
        api = Api(channel)
        await api.write_schema(CAVEATED)
        await setup_world(api, "acme")
        request = _check_request("acme", ("box:b", "view", "user:a"))
        request.contextual_relationships.append(contextual)
        request.context.update({"n": "many"})
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await api.permissions.Check(request)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        bulk = permissions_pb2.CheckBulkRequest(tenant="acme")
        bulk.contextual_relationships.append(contextual)
        item = bulk.items.add(resource=obj("box:b"), permission="view", subject=subj("user:a"))
        item.context.update({"n": "many"})
        reply = await api.permissions.CheckBulk(bulk)
        assert reply.items[0].HasField("error")

    status, lines, _ = await _replay(log_setup)
    assert status == 1
    assert lines[-1] == "0 replayed, 0 differ, 2 could not be replayed"
    not_recorded = [line for line in lines if "contextual relationships were not recorded" in line]
    assert len(not_recorded) == 2
