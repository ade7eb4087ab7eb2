"""A time bound finer than a microsecond (record times are whole microseconds) selects
exactly the records the bound itself does: `since` inclusive, `until` exclusive. It is
rounded up to the next microsecond, never cut down, which would let `since` take in a
record dated before it (docs/decision-log.md, "Query")."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from authz_service.api.gen.authz.v1 import audit_pb2, audit_pb2_grpc
from authz_service.cli import main
from authz_service.decisionlog import DecisionLogConfig, DecisionLogWriter
from tests.decisionlog.helpers import make_record

from .helpers import LogSetup, channel_to, run_cli, running

AT = datetime(2026, 12, 8, 2, 45, 32, 607907, tzinfo=UTC)  # the one record's time
TEXT = "2026-12-08T02:45:32.607907"  # ... and as text, without its zone


async def _log_one_record(root: Path) -> str:
    record = make_record(0, time=AT)
    async with DecisionLogWriter(DecisionLogConfig(root=root)) as writer:
        await writer.append(record)
    return record.decision_id


# (option, value, whether the record at AT is selected)
BOUNDS = [
    ("--since", f"{TEXT}9Z", False),  # after the record: it is not selected
    ("--since", f"{TEXT}0Z", True),  # the record's own time, digits or not
    ("--since", f"{TEXT}0000000Z", True),
    ("--since", "2026-12-08T02:45:32.6079069Z", True),
    ("--since", "2026-12-08T03:45:32.6079069+01:00", True),
    ("--until", f"{TEXT}9Z", True),  # after the record: it is before the bound
    ("--until", f"{TEXT}000Z", False),  # exclusive
    ("--until", "2026-12-08T02:45:32.6079069Z", False),
]


@pytest.mark.parametrize(("option", "value", "selected"), BOUNDS)
async def test_query_takes_a_bound_finer_than_a_microsecond_as_it_is(
    tmp_path: Path, option: str, value: str, selected: bool
) -> None:
    decision_id = await _log_one_record(tmp_path / "log")
    status, out, err = run_cli(
        "audit", "query", "--log-dir", str(tmp_path / "log"), "--json", option, value
    )
    assert status == 0, err
    found = [json.loads(line)["decision_id"] for line in out.splitlines()]
    assert found == ([decision_id] if selected else [])


def test_a_rounded_bound_past_the_calendar_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "audit",
                "query",
                "--log-dir",
                str(tmp_path),
                "--since",
                "9999-12-31T23:59:59.9999999Z",
            ]
        )
    assert exited.value.code == 2
    assert "is outside the years 1 to 9999 in UTC" in capsys.readouterr().err


def _stamp(at: datetime, nanos: int) -> Timestamp:
    """`at` (whole seconds taken) with `nanos` nanoseconds."""
    return Timestamp(seconds=int(at.replace(microsecond=0).timestamp()), nanos=nanos)


async def test_query_decisions_takes_nanoseconds_as_they_are(log_setup: LogSetup) -> None:
    decision_id = await _log_one_record(log_setup.log_dir)
    after, before = _stamp(AT, 607_907_900), _stamp(AT, 607_906_900)
    exact = _stamp(AT, 607_907_000)
    async with running(log_setup, log_mode="off") as app, channel_to(app) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)

        async def query(**bounds: Timestamp) -> list[str]:
            request = audit_pb2.QueryDecisionsRequest(tenant="acme", **bounds)
            return [reply.record.decision_id async for reply in stub.QueryDecisions(request)]

        assert await query(start_time=after) == []
        assert await query(start_time=exact) == [decision_id]
        assert await query(start_time=before) == [decision_id]
        assert await query(end_time=after) == [decision_id]
        assert await query(end_time=exact) == []
        assert await query(end_time=before) == []
        replayed = stub.ReplayDecisions(
            audit_pb2.ReplayDecisionsRequest(tenant="acme", start_time=after)
        )
        summary = [reply.summary async for reply in replayed][-1]
        assert (summary.match_count, summary.differ_count, summary.cannot_replay_count) == (0, 0, 0)
