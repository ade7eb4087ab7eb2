"""`authz audit verify --public-key` is not fooled by deletion.

An attacker who can write the log files but has no signing key removes checkpoints,
files or whole streams, then re-chains the records (recomputes every hash after an
edit), so that each chain is valid on its own. Each attack must fail verification.
The attacks work on any checkpoint layout: they remove every checkpoint line, wherever
it is, that would give them away.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from authz_service.decisionlog import (
    DecisionLogConfig,
    DecisionLogWriter,
    canonical_json,
    chain_hash,
    generate_keypair,
)
from tests.decisionlog.helpers import make_record

from .helpers import LogSetup, run_cli


def _verify(log_dir: Path, public_key: Path) -> tuple[int, str]:
    status, out, err = run_cli(
        "audit", "verify", "--log-dir", str(log_dir), "--public-key", str(public_key)
    )
    return status, out + err


def _line_of(out: str, stream: str) -> str:
    (line,) = [x for x in out.splitlines() if x.split()[1:2] == [stream]]
    return line


def _segment(log_dir: Path, tenant: str = "acme") -> Path:
    return log_dir / tenant / "000001.jsonl"


def _rechain(lines: list[bytes], start: int) -> list[bytes]:
    """Recompute the links and hashes of lines[start:], as a forger without the key can."""
    out = lines[:start]
    for line in lines[start:]:
        data: dict[str, Any] = json.loads(line)
        data["prev_hash"] = json.loads(out[-1])["hash"] if out else "0" * 64
        body = {k: v for k, v in data.items() if k not in ("prev_hash", "hash")}
        data["hash"] = chain_hash(data["prev_hash"], body)
        out.append(canonical_json(data))
    return out


def _flip(line: bytes) -> bytes:
    data = json.loads(line)
    data["decision"] = "DENIED" if data["decision"] == "ALLOWED" else "ALLOWED"
    return canonical_json(data)


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _covers(checkpoint: bytes, tenant: str) -> int:
    """The highest seq of `tenant` a checkpoint line names (-1: none), in any format."""
    data = json.loads(checkpoint)
    if "streams" in data:
        head = data["streams"].get(tenant)
        return -1 if head is None else int(head["seq"])
    return int(data["seq"]) if data.get("stream") == tenant else -1


def _drop_checkpoints(log_dir: Path, tenant: str, from_seq: int) -> int:
    """Remove every checkpoint line naming seq >= `from_seq` of `tenant`; return how many."""
    removed = 0
    for path in log_dir.rglob("checkpoints.jsonl"):
        lines = path.read_bytes().splitlines()
        kept = [line for line in lines if _covers(line, tenant) < from_seq]
        removed += len(lines) - len(kept)
        _write(path, kept)
    return removed


async def test_a_checkpoints_from_seq_210_removed_and_record_210_rewritten(
    tmp_path: Path,
) -> None:
    # 300 records written by the real writer in three runs: checkpoints at several seqs.
    private_key, public_key = generate_keypair(tmp_path / "keys")
    log_dir = tmp_path / "decisions"
    config = DecisionLogConfig(root=log_dir, signing_key_path=private_key, max_segment_age=None)
    for run in range(3):
        async with DecisionLogWriter(config) as writer:
            for i in range(run * 100, run * 100 + 100):
                await writer.append(make_record(i))
    status, out = _verify(log_dir, public_key)
    assert status == 0, out

    assert _drop_checkpoints(log_dir, "acme", 210) > 0
    lines = _segment(log_dir).read_bytes().splitlines()
    lines[210] = _flip(lines[210])
    _write(_segment(log_dir), _rechain(lines, 210))

    status, out = _verify(log_dir, public_key)
    assert status == 1, out
    failed = _line_of(out, "acme")
    assert failed.startswith("FAILED")
    # Records 200..299 are what no remaining checkpoint covers; the first is named.
    assert "acme/000001.jsonl:201 seq 200" in failed
    assert "unsigned" in failed


async def test_b_checkpoint_files_removed_and_chain_rewritten(
    real_log: LogSetup,
) -> None:
    for path in real_log.log_dir.rglob("checkpoints.jsonl"):
        path.unlink()
    lines = _segment(real_log.log_dir).read_bytes().splitlines()
    lines[3] = _flip(lines[3])
    _write(_segment(real_log.log_dir), _rechain(lines, 3))

    status, out = _verify(real_log.log_dir, real_log.public_key)
    assert status == 1, out
    for stream in ("acme", "globex", "_platform"):
        failed = _line_of(out, stream)
        assert failed.startswith("FAILED")
        assert "unsigned: no valid checkpoint" in failed


async def test_c_stream_files_emptied(real_log: LogSetup) -> None:
    for path in (real_log.log_dir / "acme").iterdir():
        path.write_bytes(b"")

    status, out = _verify(real_log.log_dir, real_log.public_key)
    assert status == 1, out
    failed = _line_of(out, "acme")
    assert failed.startswith("FAILED")
    assert "truncated: stream has no records" in failed
    assert _line_of(out, "globex").startswith("OK")


async def test_c_stream_directory_removed(real_log: LogSetup) -> None:
    for path in (real_log.log_dir / "globex").iterdir():
        path.unlink()
    (real_log.log_dir / "globex").rmdir()

    status, out = _verify(real_log.log_dir, real_log.public_key)
    assert status == 1, out
    failed = _line_of(out, "globex")
    assert failed.startswith("FAILED")
    assert "truncated: stream has no records" in failed
    assert "emptied or removed" in failed
    assert out.splitlines()[-1] == "3 streams verified, 1 failed"


async def test_d_rechained_record_appended_after_the_last_checkpoint(
    real_log: LogSetup,
) -> None:
    lines = _segment(real_log.log_dir).read_bytes().splitlines()
    forged: dict[str, Any] = json.loads(lines[-1])
    forged.update(seq=len(lines), subject="user:mallory", decision="ALLOWED")
    _write(_segment(real_log.log_dir), _rechain([*lines, canonical_json(forged)], len(lines)))

    status, out = _verify(real_log.log_dir, real_log.public_key)
    assert status == 1, out
    failed = _line_of(out, "acme")
    # The forged record itself is named: file and line, seq and decision id.
    assert (
        f"acme/000001.jsonl:{len(lines) + 1} seq {len(lines)} "
        f"decision {forged['decision_id']}: unsigned" in failed
    )
    assert "the writer's last: appended after it closed" in failed
