"""`authz audit verify` on a log written by a real server: untouched it verifies; one
changed byte, a removed record, two swapped records, a cut tail and a record appended
after the close are each rejected, naming the first bad record (file, line, seq,
decision id, problem)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from authz_service.decisionlog import canonical_json, chain_hash

from .helpers import LogSetup, run_cli

K = 5  # the tampered line (1-based); the tenant's stream has more than K + 2 lines


def _copy(setup: LogSetup, tmp_path: Path, name: str) -> tuple[Path, list[bytes]]:
    """A copy of the log to damage, and the lines of its `acme` segment."""
    copy = tmp_path / name
    shutil.copytree(setup.log_dir, copy)
    return copy, _segment(copy).read_bytes().splitlines()


def _segment(log_dir: Path) -> Path:
    return log_dir / "acme" / "000001.jsonl"


def _write(log_dir: Path, lines: list[bytes]) -> None:
    _segment(log_dir).write_bytes(b"".join(line + b"\n" for line in lines))


def _verify(log_dir: Path, setup: LogSetup) -> tuple[int, str]:
    status, out, _ = run_cli(
        "audit", "verify", "--log-dir", str(log_dir), "--public-key", str(setup.public_key)
    )
    return status, out


def _line_of(out: str, stream: str) -> str:
    (line,) = [x for x in out.splitlines() if x.split()[1:2] == [stream]]
    return line


def _id(line: bytes) -> str:
    decision_id: str = json.loads(line)["decision_id"]
    return decision_id


def test_untouched_log_verifies(real_log: LogSetup) -> None:
    # Through the real entry point, as an auditor runs it.
    done = subprocess.run(
        [
            *(sys.executable, "-m", "authz_service", "audit", "verify"),
            *("--log-dir", str(real_log.log_dir), "--public-key", str(real_log.public_key)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for stream in ("acme", "globex", "_platform"):
        assert _line_of(done.stdout, stream).startswith("OK")
    assert done.stdout.splitlines()[-1] == "3 streams verified, 0 failed"
    # The schema change is an admin record of the platform stream, valid like any other.
    status, out, _ = run_cli(
        "audit", "query", "--log-dir", str(real_log.log_dir), "--tenant", "_platform", "--json"
    )
    assert status == 0
    (admin,) = [json.loads(line) for line in out.splitlines()]
    assert (admin["kind"], admin["action"], admin["decision"]) == (
        "admin",
        "/authz.v1.SchemaService/WriteSchema",
        "APPLIED",
    )


def test_one_changed_byte(real_log: LogSetup, tmp_path: Path) -> None:
    log_dir, lines = _copy(real_log, tmp_path, "edited")
    line = bytearray(lines[K - 1])
    at = line.index(b'"subject":"') + len(b'"subject":"')
    line[at] = ord("v") if line[at] != ord("v") else ord("w")  # user:alice -> vser:alice
    _write(log_dir, [*lines[: K - 1], bytes(line), *lines[K:]])

    status, out = _verify(log_dir, real_log)
    assert status == 1
    failed = _line_of(out, "acme")
    assert failed.startswith("FAILED")
    assert (
        f"acme/000001.jsonl:{K} seq {K - 1} decision {_id(lines[K - 1])}: hash_mismatch" in failed
    )
    assert _line_of(out, "globex").startswith("OK")
    assert out.splitlines()[-1] == "3 streams verified, 1 failed"


def test_removed_record(real_log: LogSetup, tmp_path: Path) -> None:
    log_dir, lines = _copy(real_log, tmp_path, "removed")
    _write(log_dir, [*lines[: K - 1], *lines[K:]])

    status, out = _verify(log_dir, real_log)
    assert status == 1
    failed = _line_of(out, "acme")
    # The first bad record is the one after the gap: it now sits at line K.
    assert f"acme/000001.jsonl:{K} seq {K} decision {_id(lines[K])}: missing_record" in failed
    assert f"seq {K - 1} removed" in failed


def test_swapped_records(real_log: LogSetup, tmp_path: Path) -> None:
    log_dir, lines = _copy(real_log, tmp_path, "swapped")
    _write(log_dir, [*lines[: K - 1], lines[K], lines[K - 1], *lines[K + 1 :]])

    status, out = _verify(log_dir, real_log)
    assert status == 1
    failed = _line_of(out, "acme")
    assert f"acme/000001.jsonl:{K} seq {K} decision {_id(lines[K])}: reordered" in failed


def test_cut_tail_after_a_checkpoint(real_log: LogSetup, tmp_path: Path) -> None:
    log_dir, lines = _copy(real_log, tmp_path, "cut")
    assert (log_dir / "checkpoints.jsonl").read_bytes()  # the shutdown checkpoint
    kept = len(lines) - 3
    _write(log_dir, lines[:kept])  # a valid chain, only shorter

    status, out = _verify(log_dir, real_log)
    assert status == 1
    failed = _line_of(out, "acme")
    assert f"acme/000001.jsonl:{kept + 1} seq {kept} decision -: truncated" in failed
    assert f"covers seq {len(lines) - 1}" in failed


def test_a_checkpoint_needs_the_right_key(real_log: LogSetup, tmp_path: Path) -> None:
    status, out, _ = run_cli("audit", "keygen", str(tmp_path / "other"))
    assert status == 0
    assert "private key:" in out
    status, out = _verify(real_log.log_dir, real_log)
    assert status == 0
    other = tmp_path / "other" / "decision-log-signing.pub.pem"
    status, out, _ = run_cli(
        "audit", "verify", "--log-dir", str(real_log.log_dir), "--public-key", str(other)
    )
    assert status == 1
    assert "bad_signature" in _line_of(out, "acme")
    # keygen never overwrites a key
    status, _, err = run_cli("audit", "keygen", str(tmp_path / "other"))
    assert status == 2
    assert "already exists" in err


def test_a_record_appended_after_the_close_without_its_newline(
    real_log: LogSetup, tmp_path: Path
) -> None:
    # The server stopped: its last checkpoint is a `close`, after which nothing may follow.
    log_dir, lines = _copy(real_log, tmp_path, "appended")
    last = json.loads(lines[-1])
    body = {k: v for k, v in last.items() if k not in ("hash", "prev_hash")}
    body.update(seq=last["seq"] + 1, decision="DENIED")
    forged = {**body, "prev_hash": last["hash"], "hash": chain_hash(last["hash"], body)}
    with _segment(log_dir).open("ab") as segment:
        segment.write(canonical_json(forged))  # correctly chained, but no newline

    status, out = _verify(log_dir, real_log)
    assert status == 1, out
    failed = _line_of(out, "acme")
    assert (
        f"acme/000001.jsonl:{len(lines) + 1} seq {forged['seq']} "
        f"decision {forged['decision_id']}: unsigned: an incomplete line follows" in failed
    )
    assert "incomplete last line" not in out
