"""The unsigned tail: records no checkpoint covers are a warning only while a writer
could still sign them (docs/decision-log.md, "What verify guarantees")."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from authz_service.decisionlog import (
    DecisionLogConfig,
    DecisionLogWriter,
    Problem,
    canonical_json,
    load_private_key,
    verify_all,
    verify_stream,
)
from authz_service.decisionlog.layout import CHECKPOINT_FILE

from .helpers import decode, make_record, read_all_lines, stream_dir, write_records

INTERVAL = timedelta(seconds=60)  # the default checkpoint interval


async def test_a_live_writers_last_interval_is_a_warning(
    config: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    async with DecisionLogWriter(config) as writer:
        for i in range(3):
            await writer.append(make_record(i, time=datetime.now(UTC)))
        report = verify_stream(stream_dir(config), public_key)
    assert report.ok, report.findings
    assert report.covered_seq == -1  # only the start checkpoint, before any record
    assert any("3 records (seq 0..2) after the newest checkpoint" in w for w in report.warnings)
    assert any("not signed yet" in w for w in report.warnings)


async def test_a_crashed_writers_tail_fails_until_a_restart_signs_it(
    config: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    async with DecisionLogWriter(config) as writer:
        for i in range(3):
            await writer.append(make_record(i, time=datetime.now(UTC)))
        # As an auditor would see the files after a kill -9 here, two minutes later:
        later = datetime.now(UTC) + INTERVAL * 2
        report = verify_stream(stream_dir(config), public_key, now=later)
    first = report.first
    assert first is not None
    assert (first.problem, first.seq, first.line) == (Problem.UNSIGNED, 0, 1)
    assert "still unsigned after the checkpoint interval" in first.message
    assert "crashed" in first.message

    async with DecisionLogWriter(config):
        pass  # its start checkpoint signs what it recovered
    report = verify_stream(stream_dir(config), public_key, now=later)
    assert report.ok, report.findings
    assert report.covered_seq == 2


async def test_a_record_dated_after_the_interval_names_it(
    config: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    # A live writer signs within its interval, so a tail record dated later than the
    # newest checkpoint + interval + slack means later checkpoints were removed.
    now = datetime.now(UTC)
    async with DecisionLogWriter(config) as writer:
        await writer.append(make_record(0, time=now))
        await writer.append(make_record(1, time=now + INTERVAL + timedelta(seconds=31)))
        report = verify_stream(stream_dir(config), public_key, now=now)
    first = report.first
    assert first is not None
    assert (first.problem, first.seq, first.line) == (Problem.UNSIGNED, 1, 2)
    assert first.decision_id == decode(read_all_lines(config)[1])["decision_id"]
    assert "the writer would have signed it" in first.message


async def test_without_a_key_the_tail_rules_only_warn(config: DecisionLogConfig) -> None:
    await write_records(config, 3)
    path = config.root / CHECKPOINT_FILE
    path.unlink()
    report = verify_stream(stream_dir(config), None)
    assert report.ok
    assert any("a cut tail cannot be detected" in w for w in report.warnings)


async def test_a_log_signed_only_in_format_1_fails_until_a_writer_opens_it(
    tmp_path: Path, keys: tuple[Path, Path], public_key: Ed25519PublicKey
) -> None:
    # What an older writer left: records and a checkpoint in the stream's own directory.
    unsigned = DecisionLogConfig(root=tmp_path / "log", max_segment_age=None)
    await write_records(unsigned, 4)
    head = decode(read_all_lines(unsigned)[-1])
    fields = {
        "count": 4,
        "format": 1,
        "head_hash": head["hash"],
        "key_id": "0" * 16,
        "seq": 3,
        "stream": "acme",
        "time": "2024-05-01T12:00:01.000000Z",
    }
    signature = load_private_key(keys[0]).sign(canonical_json(fields))
    line = canonical_json({**fields, "signature": base64.b64encode(signature).decode()})
    (stream_dir(unsigned) / CHECKPOINT_FILE).write_bytes(line + b"\n")

    (report,) = verify_all(unsigned.root, public_key)
    assert report.covered_seq == 3  # the format 1 checkpoint still vouches for seq 3 ...
    assert report.first is not None  # ... but cannot reveal deleted streams or checkpoints
    assert report.first.problem is Problem.UNSIGNED
    assert "signed only in format 1" in report.first.message

    signed = DecisionLogConfig(root=unsigned.root, signing_key_path=keys[0], max_segment_age=None)
    async with DecisionLogWriter(signed):
        pass
    (report,) = verify_all(unsigned.root, public_key)
    assert report.ok, report.findings
    assert report.checkpoints == 3  # format 1, then the writer's start and close
