"""What verification found: problem kinds, findings with locations, per-stream reports."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from authz_service.decisionlog.chain import ChainHead
from authz_service.decisionlog.layout import Line, shown

__all__ = ["Finding", "Problem", "VerifyReport", "finding_at", "format_reports"]


class Problem(StrEnum):
    MALFORMED = "malformed"  # not JSON, not canonical, or lacks chain fields
    HASH_MISMATCH = "hash_mismatch"  # content differs from what was hashed: edited
    MISSING_RECORD = "missing_record"  # seq jumps ahead and the skipped seq is nowhere
    REORDERED = "reordered"  # seq jumps ahead and the skipped seq comes later
    DUPLICATE_SEQ = "duplicate_seq"  # seq already seen: inserted or duplicated
    BROKEN_LINK = "broken_link"  # prev_hash is not the previous record's hash
    WRONG_STREAM = "wrong_stream"  # a record of another tenant
    MISSING_SEGMENT = "missing_segment"  # segment numbering has a gap
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"  # chain rewritten under a signed checkpoint
    TRUNCATED = "truncated"  # fewer records than a signed checkpoint covers
    BAD_CHECKPOINT = "bad_checkpoint"  # checkpoint line malformed or of another stream
    BAD_SIGNATURE = "bad_signature"  # checkpoint not signed by the given key
    UNSIGNED = "unsigned"  # records no checkpoint covers where one should (verify_tail.py)
    UNEXPECTED_FILE = "unexpected_file"  # not made by the writer, so read by nothing


@dataclass(frozen=True, slots=True)
class Finding:
    problem: Problem
    message: str
    segment: Path | None  # file holding the bad line (or where the missing one belongs)
    line: int | None  # 1-based line number in `segment`; None when the file is the problem
    seq: int | None
    decision_id: str | None

    def __str__(self) -> str:
        where = "-" if self.segment is None else shown(self.segment.name)
        if self.line is not None:
            where += f":{self.line}"
        return f"{self.problem} at {where} seq={self.seq} id={self.decision_id}: {self.message}"


def finding_at(
    problem: Problem, message: str, line: Line, seq: int | None, data: dict[str, Any] | None = None
) -> Finding:
    """A finding at `line`, naming the record's decision id when it has one."""
    decision_id = data.get("decision_id") if data else None
    return Finding(
        problem,
        message,
        line.segment,
        line.number,
        seq,
        decision_id if isinstance(decision_id, str) else None,
    )


@dataclass(frozen=True, slots=True)
class VerifyReport:
    stream: str  # the tenant; for an unexpected file in a root, its name
    directory: Path
    records: int  # lines verified before the first problem (all of them when ok)
    segments: int
    head: ChainHead  # last verified entry
    checkpoints: int  # valid checkpoints that name this stream
    covered_seq: int  # highest seq a valid checkpoint vouches for; -1 if none
    signed_at: datetime | None  # time of the newest valid checkpoint naming this stream
    findings: tuple[Finding, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        """The first bad record (or, failing that, the first bad checkpoint)."""
        return self.findings[0] if self.findings else None


def format_reports(reports: Iterable[VerifyReport]) -> str:
    """Plain text for `authz audit verify`: one status line per stream, then details."""
    out = []
    for report in reports:
        status = "OK    " if report.ok else "FAILED"
        out.append(
            f"{status} stream `{report.stream}`: {report.records} records, "
            f"{report.segments} segments, {report.checkpoints} valid checkpoints, "
            f"head seq {report.head.seq}, covered to seq {report.covered_seq}"
        )
        out.extend(f"  {finding}" for finding in report.findings)
        out.extend(f"  warning: {warning}" for warning in report.warnings)
    return "\n".join(out) + "\n" if out else "no decision log streams\n"
