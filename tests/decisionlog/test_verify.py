"""Tampering with a real log on disk is detected, and the first bad record is named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from authz_service.decisionlog import (
    DecisionLogConfig,
    Problem,
    canonical_json,
    chain_hash,
    format_reports,
    iter_entries,
    verify_all,
    verify_stream,
)
from authz_service.decisionlog.layout import CHECKPOINT_FILE
from authz_service.errors import NotFound

from .helpers import decode, read_all_lines, rewrite_single_segment, stream_dir, write_records

N = 10


@pytest.fixture
async def log(config: DecisionLogConfig) -> DecisionLogConfig:
    """Ten records of tenant `acme`, closed (so a checkpoint covers seq 9)."""
    await write_records(config, N)
    return config


def relink(data: dict[str, object]) -> bytes:
    """Recompute the hash of a (forged) line over its own prev_hash, as a forger would."""
    body = {k: v for k, v in data.items() if k not in ("hash", "prev_hash")}
    data["hash"] = chain_hash(str(data["prev_hash"]), body)
    return canonical_json(data)


def test_untouched_log_verifies(log: DecisionLogConfig, public_key: Ed25519PublicKey) -> None:
    report = verify_stream(stream_dir(log), public_key)
    assert report.ok, format_reports([report])
    assert report.records == N
    assert report.head.seq == N - 1
    assert report.covered_seq == N - 1
    assert report.checkpoints == 1
    assert report.warnings == ()


@pytest.mark.parametrize("field", [b'"subject":"user:u', b'"decision":"', b'"hash":"'])
def test_changed_byte_is_found(
    log: DecisionLogConfig, public_key: Ed25519PublicKey, field: bytes
) -> None:
    lines = read_all_lines(log)
    at = lines[4].index(field) + len(field)
    original = lines[4][at : at + 1]
    lines[4] = lines[4][:at] + (b"X" if original != b"X" else b"Y") + lines[4][at + 1 :]
    path = rewrite_single_segment(log, lines)

    first = verify_stream(stream_dir(log), public_key).first
    assert first is not None
    assert first.problem is Problem.HASH_MISMATCH
    assert (first.segment, first.line, first.seq) == (path, 5, 4)
    assert first.decision_id == decode(lines[4])["decision_id"]


def test_non_canonical_edit_is_found(log: DecisionLogConfig, public_key: Ed25519PublicKey) -> None:
    lines = read_all_lines(log)
    lines[2] = lines[2].replace(b'","', b'", "', 1)  # same JSON meaning, other bytes
    rewrite_single_segment(log, lines)
    first = verify_stream(stream_dir(log), public_key).first
    assert first is not None
    assert (first.problem, first.line, first.seq) == (Problem.MALFORMED, 3, 2)


def test_removed_record_is_found(log: DecisionLogConfig, public_key: Ed25519PublicKey) -> None:
    lines = read_all_lines(log)
    del lines[3]
    rewrite_single_segment(log, lines)
    first = verify_stream(stream_dir(log), public_key).first
    assert first is not None
    assert first.problem is Problem.MISSING_RECORD
    assert (first.line, first.seq) == (4, 4)  # the record after the gap
    assert "seq 3 removed" in first.message


def test_swapped_records_are_found(log: DecisionLogConfig, public_key: Ed25519PublicKey) -> None:
    lines = read_all_lines(log)
    lines[2], lines[6] = lines[6], lines[2]
    rewrite_single_segment(log, lines)
    first = verify_stream(stream_dir(log), public_key).first
    assert first is not None
    assert first.problem is Problem.REORDERED
    assert (first.line, first.seq) == (3, 6)
    assert first.decision_id == decode(lines[2])["decision_id"]


def test_inserted_forgery_with_wrong_link_is_found(
    log: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    lines = read_all_lines(log)
    forged = decode(lines[5])
    forged.update(decision="ALLOWED", subject="user:mallory", prev_hash="ab" * 32)
    lines.insert(5, relink(forged))
    rewrite_single_segment(log, lines)
    first = verify_stream(stream_dir(log), public_key).first
    assert first is not None
    assert first.problem is Problem.BROKEN_LINK
    assert (first.line, first.seq) == (6, 5)


def test_inserted_forgery_with_right_link_is_found(
    log: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    # Linked correctly to its predecessor, the forgery itself passes; the genuine record
    # that follows now repeats its seq.
    lines = read_all_lines(log)
    forged = decode(lines[5])
    forged.update(subject="user:mallory")
    lines.insert(5, relink(forged))
    rewrite_single_segment(log, lines)
    first = verify_stream(stream_dir(log), public_key).first
    assert first is not None
    assert first.problem is Problem.DUPLICATE_SEQ
    assert (first.line, first.seq) == (7, 5)


def test_cut_tail_after_checkpoint_is_found(
    log: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    lines = read_all_lines(log)
    path = rewrite_single_segment(log, lines[:7])
    report = verify_stream(stream_dir(log), public_key)
    assert report.first is not None
    assert report.first.problem is Problem.TRUNCATED
    assert (report.first.segment, report.first.line, report.first.seq) == (path, 8, 7)
    assert "covers seq 9" in report.first.message


def test_rewritten_chain_is_caught_by_checkpoint(
    log: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    # A forger without the signing key edits seq 3 and recomputes every later hash: the
    # chain is consistent again, but the signed head no longer matches.
    entries = [decode(line) for line in read_all_lines(log)]
    entries[3]["decision"] = "ALLOWED"
    rebuilt: list[bytes] = []
    for index, data in enumerate(entries):
        if index > 0:
            data["prev_hash"] = decode(rebuilt[-1])["hash"]
        rebuilt.append(relink(data))
    rewrite_single_segment(log, rebuilt)
    first = verify_stream(stream_dir(log), public_key).first
    assert first is not None
    assert (first.problem, first.seq) == (Problem.CHECKPOINT_MISMATCH, N - 1)


def test_forged_checkpoint_signature_is_found(
    log: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    path = log.root / CHECKPOINT_FILE
    start, close = path.read_bytes().splitlines()
    data = json.loads(close)
    data["streams"]["acme"]["seq"] = 5  # claim a shorter stream, keep the old signature
    path.write_bytes(start + b"\n" + canonical_json(data) + b"\n")
    report = verify_stream(stream_dir(log), public_key)
    assert report.first is not None
    assert report.first.problem is Problem.BAD_SIGNATURE
    assert (report.first.segment, report.first.line) == (path, 2)
    assert report.checkpoints == 0  # the start checkpoint preceded the stream


def test_other_key_does_not_verify(log: DecisionLogConfig) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    report = verify_stream(stream_dir(log), other)
    assert report.first is not None
    assert report.first.problem is Problem.BAD_SIGNATURE


async def test_missing_segment_is_found(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    config = DecisionLogConfig(root=tmp_path / "log", signing_key_path=keys[0], max_segment_bytes=1)
    await write_records(config, 4)  # one record per segment
    (stream_dir(config) / "000002.jsonl").unlink()
    report = verify_stream(stream_dir(config), None)
    assert report.first is not None
    assert report.first.problem is Problem.MISSING_SEGMENT
    assert report.first.segment == stream_dir(config) / "000003.jsonl"


@pytest.mark.parametrize(
    "name", ["0000002.jsonl", "000000.jsonl", "2.jsonl", "000002.jsonl.bak", "notes.txt"]
)
async def test_a_file_that_is_not_a_segment_is_named(
    tmp_path: Path, keys: tuple[Path, Path], public_key: Ed25519PublicKey, name: str
) -> None:
    config = DecisionLogConfig(root=tmp_path / "log", signing_key_path=keys[0], max_segment_bytes=1)
    await write_records(config, 2)  # one record per segment: 000001.jsonl, 000002.jsonl
    shutil.copy(stream_dir(config) / "000002.jsonl", stream_dir(config) / name)

    for report in (verify_stream(stream_dir(config), public_key), *verify_all(config.root, None)):
        assert report.first is not None, format_reports([report])
        assert report.first.problem is Problem.UNEXPECTED_FILE
        assert report.first.segment == stream_dir(config) / name
        assert report.records == 2  # the segments themselves were verified
    assert len(list(iter_entries(config.root))) == 2  # and the copy is not read


async def test_a_directory_named_as_a_segment_is_named(tmp_path: Path) -> None:
    config = DecisionLogConfig(root=tmp_path / "log")
    await write_records(config, 2)
    (stream_dir(config) / "000002.jsonl").mkdir()
    first = verify_stream(stream_dir(config), None).first
    assert first is not None
    assert first.problem is Problem.UNEXPECTED_FILE
    assert "directory `000002.jsonl`" in first.message


async def test_verify_all_covers_every_tenant(
    config: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    await write_records(config, 12, tenants=("acme", "globex", "a/b c"))
    reports = verify_all(config.root, public_key)
    assert [r.stream for r in reports] == ["a/b c", "acme", "globex"]
    assert all(r.ok and r.records == 4 for r in reports), format_reports(reports)

    lines = read_all_lines(config, "globex")
    (stream_dir(config, "globex") / "000001.jsonl").write_bytes(b"\n".join(lines[1:]) + b"\n")
    reports = verify_all(config.root, public_key)
    assert [r.ok for r in reports] == [True, True, False]
    assert "FAILED stream `globex`" in format_reports(reports)


def test_moved_between_tenants_is_found(
    log: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    lines = read_all_lines(log)
    data = decode(lines[-1])
    data["tenant"] = "globex"
    lines[-1] = relink(data)
    rewrite_single_segment(log, lines)
    first = verify_stream(stream_dir(log), public_key).first
    assert first is not None
    assert first.problem is Problem.WRONG_STREAM


async def test_without_checkpoints_a_warning_says_so(tmp_path: Path) -> None:
    config = DecisionLogConfig(root=tmp_path / "log")
    await write_records(config, 3)
    report = verify_stream(stream_dir(config), None)
    assert report.ok
    assert any("cut tail cannot be detected" in w for w in report.warnings)


def test_missing_directory_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        verify_stream(tmp_path / "nope", None)
    with pytest.raises(NotFound):
        verify_all(tmp_path / "nope", None)
