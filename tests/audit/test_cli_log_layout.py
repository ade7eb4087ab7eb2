"""`authz audit verify` and `query` on a log directory holding entries its writer never
makes: each is a failed line naming it (exit 1), and the real streams are still
verified and read; none is read as a tenant's stream."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from authz_service.decisionlog import DecisionLogConfig, generate_keypair
from tests.decisionlog.helpers import write_records

from .helpers import run_cli


@pytest.fixture
async def signed(tmp_path: Path) -> tuple[Path, Path]:
    """(log directory, public key): eight records each of `demo` and `other`, closed."""
    private, public = generate_keypair(tmp_path / "keys")
    log_dir = tmp_path / "logs"
    config = DecisionLogConfig(root=log_dir, signing_key_path=private)
    await write_records(config, 16, tenants=("demo", "other"))
    return log_dir, public


def _verify(log_dir: Path, public_key: Path) -> tuple[int, list[str]]:
    status, out, err = run_cli(
        "audit", "verify", "--log-dir", str(log_dir), "--public-key", str(public_key)
    )
    assert err == ""
    return status, out.splitlines()


def _query(log_dir: Path, *filters: str) -> tuple[int, list[str]]:
    status, out, err = run_cli("audit", "query", "--log-dir", str(log_dir), "--json", *filters)
    assert err == ""
    return status, out.splitlines()


def test_a_renamed_stream_fails_verification_and_is_not_queried(
    signed: tuple[Path, Path],
) -> None:
    log_dir, public_key = signed
    (log_dir / "demo").rename(log_dir / "%64emo")

    status, lines = _verify(log_dir, public_key)
    assert status == 1, lines
    assert lines[0].split()[:2] == ["FAILED", "%64emo"]
    assert "unexpected_file: directory `%64emo` is not a stream: tenant `demo`'s" in lines[0]
    assert lines[1].split()[:2] == ["FAILED", "demo"]
    assert "truncated: stream has no records" in lines[1]
    assert lines[2].split()[:2] == ["OK", "other"]
    assert lines[-1] == "3 streams verified, 2 failed"
    assert _query(log_dir, "--tenant", "demo") == (0, [])


def test_a_stray_directory_is_a_finding_and_does_not_stop_a_query(
    signed: tuple[Path, Path],
) -> None:
    log_dir, public_key = signed
    (log_dir / "%ff").mkdir()

    status, lines = _verify(log_dir, public_key)
    assert status == 1, lines
    assert lines[0].split()[:2] == ["FAILED", "%ff"]
    assert "unexpected_file: directory `%ff` is not part of the log" in lines[0]
    assert [line.split()[:2] for line in lines[1:3]] == [["OK", "demo"], ["OK", "other"]]
    status, rows = _query(log_dir, "--tenant", "demo")
    assert (status, len(rows)) == (0, 8)
    status, rows = _query(log_dir)
    assert (status, len(rows)) == (0, 16)


async def test_a_second_segment_2_is_named_not_a_missing_segment(tmp_path: Path) -> None:
    private, public_key = generate_keypair(tmp_path / "keys")
    log_dir = tmp_path / "logs"
    config = DecisionLogConfig(root=log_dir, signing_key_path=private, max_segment_bytes=1)
    await write_records(config, 2, tenants=("demo",))  # 000001.jsonl, 000002.jsonl
    shutil.copy(log_dir / "demo" / "000002.jsonl", log_dir / "demo" / "0000002.jsonl")

    status, lines = _verify(log_dir, public_key)
    assert status == 1, lines
    assert lines[0] == (
        "FAILED  demo  unexpected_file: file `0000002.jsonl` is not a segment: "
        "segment 2 is `000002.jsonl`; renamed, copied or added, it is not read"
    )
    status, rows = _query(log_dir)
    assert (status, len(rows)) == (0, 2)
