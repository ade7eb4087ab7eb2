"""Entries the writer never makes are found by verify and read by nothing.

The writer names a tenant's stream directory `stream_dir_name(tenant)` and nothing else,
so another name that decodes to the same tenant (`%61cme` for `acme`) is not a second
door to that stream: renamed there, the stream is missing; copied there, it is not read
twice. Every such entry is an `unexpected_file` finding naming it.
"""

from __future__ import annotations

import logging
import shutil

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from authz_service.decisionlog import (
    DecisionLogConfig,
    Problem,
    RecordFilter,
    VerifyReport,
    format_reports,
    iter_entries,
    verify_all,
)
from authz_service.decisionlog.layout import tenant_from_dir_name
from authz_service.errors import InvalidArgument

from .helpers import read_all_lines, stream_dir, write_records


@pytest.fixture
async def log(config: DecisionLogConfig) -> DecisionLogConfig:
    """Eight records each of `acme` and `globex`, closed (a checkpoint covers both)."""
    await write_records(config, 16, tenants=("acme", "globex"))
    return config


def by_stream(reports: list[VerifyReport]) -> dict[str, VerifyReport]:
    return {report.stream: report for report in reports}


def tenants_read(config: DecisionLogConfig, where: RecordFilter | None = None) -> list[str]:
    return [stored.entry.record.tenant for stored in iter_entries(config.root, where)]


def test_a_renamed_stream_is_missing_and_its_new_name_a_finding(
    log: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    stream_dir(log).rename(log.root / "%61cme")  # decodes to `acme`, but is not its name

    reports = by_stream(verify_all(log.root, public_key))
    assert sorted(reports) == ["%61cme", "acme", "globex"], format_reports(reports.values())
    assert reports["globex"].ok
    acme = reports["acme"].first
    assert acme is not None  # the checkpoint names `acme`, whose directory is gone
    assert acme.problem is Problem.TRUNCATED
    stray = reports["%61cme"].first
    assert stray is not None
    assert stray.problem is Problem.UNEXPECTED_FILE
    assert stray.segment == log.root / "%61cme"
    assert "tenant `acme`'s stream is `acme`" in stray.message
    # A verification of one tenant reports the entries named as that tenant's.
    assert sorted(r.stream for r in verify_all(log.root, public_key, tenant="acme")) == [
        "%61cme",
        "acme",
    ]
    assert [r.stream for r in verify_all(log.root, public_key, tenant="globex")] == ["globex"]
    # Readers read only the writer's names: `acme` has no records now.
    assert tenants_read(log, RecordFilter(tenant="acme")) == []
    assert set(tenants_read(log)) == {"globex"}


def test_a_copied_and_edited_stream_is_a_finding_and_read_once(
    log: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    copy = log.root / "%61cme"
    shutil.copytree(stream_dir(log), copy)
    (segment,) = copy.iterdir()
    segment.write_bytes(segment.read_bytes().replace(b'"user:u', b'"user:X', 1))

    reports = by_stream(verify_all(log.root, public_key))
    assert not reports["%61cme"].ok, format_reports(reports.values())
    assert [s for s, r in reports.items() if r.ok] == ["acme", "globex"]
    assert reports["%61cme"].findings[0].problem is Problem.UNEXPECTED_FILE
    assert tenants_read(log, RecordFilter(tenant="acme")) == ["acme"] * 8
    assert sorted(tenants_read(log)) == ["acme"] * 8 + ["globex"] * 8


@pytest.mark.parametrize("name", ["%ff", "%C0%AE", "%2f", "lost%2bfound", ".hidden", "acme.bak"])
def test_a_stray_directory_is_a_finding_not_an_error(
    log: DecisionLogConfig, public_key: Ed25519PublicKey, name: str
) -> None:
    (log.root / name).mkdir()

    reports = by_stream(verify_all(log.root, public_key))
    ok = [s for s, r in reports.items() if r.ok]
    assert ok == ["acme", "globex"], format_reports(reports.values())
    (stray,) = [r for s, r in reports.items() if s not in ("acme", "globex")]
    assert stray.first is not None
    assert stray.first.problem is Problem.UNEXPECTED_FILE
    assert stray.first.segment == log.root / name
    assert [r.stream for r in verify_all(log.root, public_key, tenant="globex")] == ["globex"]
    assert tenants_read(log, RecordFilter(tenant="acme")) == ["acme"] * 8
    assert len(tenants_read(log)) == 16


def test_a_file_systems_lost_and_found_is_no_finding(
    log: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    # A log directory that is a volume's mount point holds one; no stream can be called so.
    (log.root / "lost+found").mkdir()

    reports = by_stream(verify_all(log.root, public_key))
    assert [s for s, r in reports.items() if r.ok] == ["acme", "globex"]
    assert len(reports) == 2


def test_a_stray_file_in_the_root_is_a_finding(
    log: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    (log.root / "notes.txt").write_text("hello")
    (log.root / "%61cme").write_bytes(b"".join(line + b"\n" for line in read_all_lines(log)))

    reports = by_stream(verify_all(log.root, public_key))
    assert sorted(s for s, r in reports.items() if not r.ok) == ["%61cme", "notes.txt"]
    assert all(
        r.first is None or r.first.problem is Problem.UNEXPECTED_FILE for r in reports.values()
    )
    assert len(tenants_read(log)) == 16


def test_the_lock_and_checkpoint_files_are_the_writers(
    log: DecisionLogConfig, public_key: Ed25519PublicKey
) -> None:
    assert {p.name for p in log.root.iterdir()} == {
        ".writer.lock",
        "checkpoints.jsonl",
        "acme",
        "globex",
    }
    assert [r.stream for r in verify_all(log.root, public_key) if not r.ok] == []


async def test_the_writer_does_not_adopt_a_renamed_stream(
    log: DecisionLogConfig, public_key: Ed25519PublicKey, caplog: pytest.LogCaptureFixture
) -> None:
    renamed = log.root / "%61cme"
    stream_dir(log).rename(renamed)
    before = {p.name: p.read_bytes() for p in renamed.iterdir()}

    with caplog.at_level(logging.WARNING):
        await write_records(log, 2)
    assert {p.name: p.read_bytes() for p in renamed.iterdir()} == before
    # `acme` starts again in its own directory; the signed history says it had more.
    assert [s.entry.seq for s in iter_entries(log.root, RecordFilter(tenant="acme"))] == [0, 1]
    assert "`%61cme`" in caplog.text
    acme = by_stream(verify_all(log.root, public_key))["acme"]
    assert not acme.ok


def test_directory_names_map_one_to_one() -> None:
    assert tenant_from_dir_name("d%C3%ABmo%2Fx") == "dëmo/x"
    for name in ("%64emo", "d%c3%abmo", "%FF", "%C0%AE", "dëmo", "a%2"):
        with pytest.raises(InvalidArgument, match="not a stream directory name"):
            tenant_from_dir_name(name)
