"""Restart, torn-line recovery and segment rotation against real files."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from authz_service.decisionlog import DecisionLogConfig, DecisionLogWriter, verify_stream
from authz_service.decisionlog.layout import CHECKPOINT_FILE
from authz_service.errors import FailedPrecondition

from .helpers import decode, make_record, read_all_lines, segments, stream_dir, write_records


async def test_restart_continues_the_chain(
    config: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    # Segment age counts from the first record's time, and test records are from 2024.
    config = replace(config, max_segment_age=None)
    await write_records(config, 3)
    async with DecisionLogWriter(config) as writer:
        entry = await writer.append(make_record(3))
    assert entry.seq == 3
    assert entry.prev_hash == decode(read_all_lines(config)[2])["hash"]
    assert len(segments(config)) == 1  # a restart appends to the open segment
    report = verify_stream(stream_dir(config), public_key)
    assert report.ok
    assert report.records == 4
    assert report.checkpoints == 3  # the first close, the restart and the second close


async def test_torn_last_line_is_cut_and_logged(
    config: DecisionLogConfig, public_key: Ed25519PublicKey, caplog: pytest.LogCaptureFixture
) -> None:
    async with DecisionLogWriter(config) as writer:
        for i in range(5):
            await writer.append(make_record(i, time=datetime.now(UTC)))
    # What a crash in the middle of writing a record leaves: a torn line, and no close
    # checkpoint (after a close, nothing may follow, not even a torn line).
    checkpoints = config.root / CHECKPOINT_FILE
    checkpoints.write_bytes(checkpoints.read_bytes().splitlines(keepends=True)[0])
    (segment,) = segments(config)
    complete = segment.read_bytes()
    torn = read_all_lines(config)[4][:37]
    segment.write_bytes(complete + torn)

    report = verify_stream(stream_dir(config), public_key)
    assert report.ok
    assert report.records == 5
    assert any("incomplete last line" in w for w in report.warnings)

    with caplog.at_level(logging.WARNING):
        async with DecisionLogWriter(config) as writer:
            assert segment.read_bytes() == complete  # exactly the fragment was removed
            entry = await writer.append(make_record(5))
    assert "torn line (37 bytes" in caplog.text
    assert entry.seq == 5
    assert verify_stream(stream_dir(config), public_key).ok


async def test_torn_line_without_any_complete_line(config: DecisionLogConfig) -> None:
    await write_records(config, 1)
    (segment,) = segments(config)
    segment.write_bytes(b'{"action":"re')
    async with DecisionLogWriter(config) as writer:
        entry = await writer.append(make_record(1))
    assert entry.seq == 0  # the only record was never complete, so the chain starts over
    assert segment.read_bytes() == entry.line + b"\n"


async def test_damaged_complete_last_line_refuses_to_start(config: DecisionLogConfig) -> None:
    await write_records(config, 3)
    (segment,) = segments(config)
    lines = read_all_lines(config)
    damaged = lines[2].replace(b'"revision":12', b'"revision":99')
    segment.write_bytes(b"\n".join([*lines[:2], damaged]) + b"\n")
    with pytest.raises(FailedPrecondition, match="damaged record"):
        await DecisionLogWriter(config).start()
    assert segment.read_bytes().endswith(damaged + b"\n")  # never rewritten


async def test_size_rotation_keeps_one_chain_across_segments(
    config: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    config = replace(config, max_segment_bytes=3000)
    await write_records(config, 30)
    files = segments(config)
    assert len(files) > 3
    assert [f.name for f in files][:2] == ["000001.jsonl", "000002.jsonl"]
    assert all(f.stat().st_size <= 3000 for f in files)
    report = verify_stream(stream_dir(config), public_key)
    assert report.ok
    assert report.records == 30
    assert report.segments == len(files)


async def test_age_rotation_starts_a_new_segment(
    config: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    config = replace(config, max_segment_age=1e-6)
    async with DecisionLogWriter(config) as writer:
        for i in range(3):
            await writer.append(make_record(i))  # durable: one batch each
    assert len(segments(config)) == 3
    assert verify_stream(stream_dir(config), public_key).ok


async def test_empty_newest_segment_is_reused(config: DecisionLogConfig) -> None:
    await write_records(config, 2)
    (stream_dir(config) / "000002.jsonl").write_bytes(b"")  # crash right after creating it
    async with DecisionLogWriter(config) as writer:
        entry = await writer.append(make_record(2))
    assert entry.seq == 2
    assert (stream_dir(config) / "000002.jsonl").read_bytes() == entry.line + b"\n"
    assert len(segments(config)) == 2
