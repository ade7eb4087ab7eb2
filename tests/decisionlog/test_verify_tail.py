"""The unsigned tail: records no checkpoint covers are a warning only while a writer
could still sign them (docs/decision-log.md, "What verify guarantees")."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from authz_service.decisionlog import (
    DecisionLogConfig,
    DecisionLogWriter,
    Problem,
    canonical_json,
    chain_hash,
    key_id,
    load_private_key,
    verify_all,
    verify_stream,
)
from authz_service.decisionlog.layout import CHECKPOINT_FILE
from authz_service.decisionlog.record import format_time

from .helpers import (
    decode,
    make_record,
    read_all_lines,
    segments,
    stream_dir,
    wait_until,
    write_records,
)

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
    # A live writer signs every interval, so a tail record dated later than the newest
    # checkpoint + interval + slack means later checkpoints were removed.
    now = datetime.now(UTC)
    async with DecisionLogWriter(config) as writer:
        await writer.append(make_record(0, time=now))
        await writer.append(make_record(1, time=now + INTERVAL + timedelta(seconds=31)))
        report = verify_stream(stream_dir(config), public_key, now=now)
    first = report.first
    assert first is not None
    assert (first.problem, first.seq, first.line) == (Problem.UNSIGNED, 1, 2)
    assert first.decision_id == decode(read_all_lines(config)[1])["decision_id"]
    assert "the writer signs every interval" in first.message


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
        "key_id": key_id(public_key),  # as older writers named their key
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


# --- A record after an idle stretch (docs/decision-log.md, "The unsigned tail") ---

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


async def _records_at(root: Path, times: list[datetime]) -> list[dict[str, Any]]:
    """Records dated `times`, written without checkpoints (the test signs its own)."""
    unsigned = DecisionLogConfig(root=root, max_segment_age=None)
    async with DecisionLogWriter(unsigned) as writer:
        for i, at in enumerate(times):
            await writer.append(make_record(i, time=at))
    return [decode(line) for line in read_all_lines(unsigned)]


def _checkpoint_line(
    key: Ed25519PrivateKey,
    format_: int,
    event: str,
    at: datetime,
    head: dict[str, Any] | None,
    interval: timedelta = INTERVAL,
) -> bytes:
    """A checkpoint as a writer of checkpoint format `format_` signs it, built by hand so
    that it does not depend on how the code under test writes one."""
    fields = {
        "event": event,
        "format": format_,
        "interval_ms": round(interval.total_seconds() * 1000),
        "key_id": key_id(key.public_key()),
        "streams": {} if head is None else {"acme": {"hash": head["hash"], "seq": head["seq"]}},
        "time": format_time(at),
    }
    signature = base64.b64encode(key.sign(canonical_json(fields))).decode()
    return canonical_json({**fields, "signature": signature})


def _write_checkpoints(root: Path, lines: list[bytes]) -> None:
    (root / CHECKPOINT_FILE).write_bytes(b"".join(line + b"\n" for line in lines))


async def test_an_idle_writer_signs_every_interval(
    config: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    # Nothing changes after the first record, and the writer still signs each interval:
    # a record after a long idle stretch then follows a checkpoint at most one interval
    # old, which is what lets verify date-check it.
    config = replace(config, checkpoint_interval=0.01)
    path = config.root / CHECKPOINT_FILE

    def checkpoints() -> list[dict[str, Any]]:
        complete = path.read_bytes().rpartition(b"\n")[0]  # the writer may be mid-line
        return [decode(line) for line in complete.splitlines()]

    async with DecisionLogWriter(config) as writer:
        entry = await writer.append(make_record(0, time=datetime.now(UTC)))
        head = {"acme": {"hash": entry.hash, "seq": 0}}

        def unchanged() -> int:  # interval checkpoints with nothing new since the record
            return sum(c["event"] == "interval" and c["streams"] == head for c in checkpoints())

        await wait_until(lambda: unchanged() >= 3)
    written = checkpoints()
    assert [c["event"] for c in written[:1] + written[-1:]] == ["start", "close"]
    assert {c["format"] for c in written} == {3}
    assert verify_stream(stream_dir(config), public_key).ok


async def test_an_older_writers_log_verifies_after_an_idle_stretch(
    tmp_path: Path, keys: tuple[Path, Path], public_key: Ed25519PublicKey
) -> None:
    # Checkpoint format 2 writers skipped an interval when nothing had changed. Such a
    # log, idle for ten minutes after its start checkpoint and then given one record, is
    # honest: the writer had nothing to sign until that record, which its next interval
    # (not yet due) signs.
    key = load_private_key(keys[0])
    later = T0 + timedelta(minutes=10)
    records = await _records_at(tmp_path / "log", [T0, T0, T0, later])
    _write_checkpoints(tmp_path / "log", [_checkpoint_line(key, 2, "start", T0, records[2])])
    report = verify_stream(tmp_path / "log" / "acme", public_key, now=later + timedelta(seconds=1))
    assert report.ok, report.findings
    assert report.covered_seq == 2
    assert any("1 record (seq 3..3) after the newest checkpoint" in w for w in report.warnings)


async def test_an_older_writers_record_unsigned_past_its_interval_fails(
    tmp_path: Path, keys: tuple[Path, Path], public_key: Ed25519PublicKey
) -> None:
    # The record of T0 + 1 s changed the stream, so the writer (any format) signed it at
    # its next interval, by T0 + 61 s: with no checkpoint after T0 left, later ones were
    # removed. Judged by the first checkpoint that could have signed it, not by the time
    # of the newest one kept.
    key = load_private_key(keys[0])
    times = [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=100)]
    records = await _records_at(tmp_path / "log", times)
    _write_checkpoints(tmp_path / "log", [_checkpoint_line(key, 2, "start", T0, records[0])])
    now = T0 + timedelta(seconds=101)
    report = verify_stream(tmp_path / "log" / "acme", public_key, now=now)
    first = report.first
    assert first is not None
    assert (first.problem, first.seq) == (Problem.UNSIGNED, 1)
    assert "still unsigned after the checkpoint interval" in first.message


async def test_a_current_log_with_its_interval_checkpoints_removed_fails(
    tmp_path: Path, keys: tuple[Path, Path], public_key: Ed25519PublicKey
) -> None:
    # A current writer signs every interval, changed or not: the record of T0 + 10 min
    # after a newest checkpoint of T0 means the nine interval checkpoints between were
    # removed, even though the record itself is fresh.
    key = load_private_key(keys[0])
    later = T0 + timedelta(minutes=10)
    records = await _records_at(tmp_path / "log", [T0, later])
    kept = _checkpoint_line(key, 3, "start", T0, records[0])
    _write_checkpoints(tmp_path / "log", [kept])
    now = later + timedelta(seconds=1)
    report = verify_stream(tmp_path / "log" / "acme", public_key, now=now)
    first = report.first
    assert first is not None
    assert (first.problem, first.seq) == (Problem.UNSIGNED, 1)
    assert "later checkpoints were removed" in first.message

    # With them in place, the same log verifies.
    every_minute = [
        _checkpoint_line(key, 3, "interval", T0 + INTERVAL * n, records[0]) for n in range(1, 10)
    ]
    _write_checkpoints(tmp_path / "log", [kept, *every_minute])
    report = verify_stream(tmp_path / "log" / "acme", public_key, now=now)
    assert report.ok, report.findings


# --- Bytes after the writer's close (docs/decision-log.md, "The unsigned tail") ---


def _forged_next(config: DecisionLogConfig) -> bytes:
    """A record after the last one, correctly chained, as a forger would append it."""
    last = decode(read_all_lines(config)[-1])
    body = {k: v for k, v in last.items() if k not in ("hash", "prev_hash")}
    body.update(seq=last["seq"] + 1, decision="DENIED")
    return canonical_json(
        {**body, "prev_hash": last["hash"], "hash": chain_hash(last["hash"], body)}
    )


async def test_an_incomplete_line_after_the_close_fails(
    config: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    # A torn write cannot follow the close: no writer appends before its start checkpoint.
    await write_records(config, 3)
    (segment,) = segments(config)
    complete = segment.read_bytes()
    forged = _forged_next(config)
    for tail in (forged, b'{"action":"re'):  # a whole record without its newline; garbage
        segment.write_bytes(complete + tail)
        report = verify_stream(stream_dir(config), public_key)
        first = report.first
        assert first is not None
        assert (first.problem, first.segment, first.line, first.seq) == (
            Problem.UNSIGNED,
            segment,
            4,
            3,
        )
        assert "an incomplete line follows the newest checkpoint" in first.message
        assert "the writer's last: appended after it closed" in first.message
        assert not any("incomplete last line" in w for w in report.warnings)
    assert first.decision_id is None  # garbage names none; the forged record named its own

    segment.write_bytes(complete + forged)
    first = verify_stream(stream_dir(config), public_key).first
    assert first is not None
    assert first.decision_id == decode(forged)["decision_id"]
    # Without a key every tail case is a warning, this one too.
    report = verify_stream(stream_dir(config), None)
    assert report.ok
    assert any("an incomplete line follows the newest checkpoint" in w for w in report.warnings)


async def test_an_incomplete_line_while_the_writer_runs_is_a_warning(
    config: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    async with DecisionLogWriter(config) as writer:
        await writer.append(make_record(0, time=datetime.now(UTC)))
        (segment,) = segments(config)
        with segment.open("ab") as file:
            file.write(b'{"action":"re')  # as a crash mid-write would leave it
        report = verify_stream(stream_dir(config), public_key)
        segment.write_bytes(segment.read_bytes()[: -len(b'{"action":"re')])
    assert report.ok, report.findings
    assert any("000001.jsonl:2 is an incomplete last line" in w for w in report.warnings)
