"""Verification of file-sink streams: chain, sequence and signed checkpoints.

Per line, in this order: the line is canonical JSON; its own hash matches its content
(any edited byte fails here); its `seq` is the next one (removed, reordered, inserted
or duplicated records fail here); its `prev_hash` is the previous line's hash (a forged
line with a recomputed hash fails here); it belongs to this stream's tenant; and where
a valid checkpoint names its seq, the hashes agree (a rewritten chain fails here).
After the last line, a checkpoint beyond the end reveals a cut tail.

The scan stops at the first bad line: everything after it is suspect, and the first
one is what an investigator needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from authz_service.decisionlog.chain import ChainHead, recompute_hash
from authz_service.decisionlog.checkpoint import Checkpoint
from authz_service.decisionlog.layout import (
    CHECKPOINT_FILE,
    Line,
    list_segments,
    list_streams,
    read_lines,
    tenant_from_dir_name,
)
from authz_service.decisionlog.record import canonical_json
from authz_service.decisionlog.verify_report import Finding, Problem, VerifyReport
from authz_service.errors import AuthzError, NotFound

__all__ = ["verify_all", "verify_stream"]


def verify_stream(path: Path, public_key: Ed25519PublicKey | None) -> VerifyReport:
    """Verify one stream directory (a file inside it names its directory).

    Without `public_key` signatures are not checked and checkpoints are trusted as
    written; the report warns about it.
    """
    directory = path.parent if path.is_file() else path
    if not directory.is_dir():
        raise NotFound(f"decision log stream `{path}` does not exist")
    return _Verifier(directory, tenant_from_dir_name(directory.name), public_key).run()


def verify_all(root: Path, public_key: Ed25519PublicKey | None) -> list[VerifyReport]:
    """Verify every tenant stream under `root`, sorted by tenant."""
    if not root.is_dir():
        raise NotFound(f"decision log directory `{root}` does not exist")
    return [_Verifier(d, t, public_key).run() for t, d in list_streams(root)]


class _Verifier:
    def __init__(self, directory: Path, tenant: str, key: Ed25519PublicKey | None) -> None:
        self.directory, self.tenant, self.key = directory, tenant, key
        self.segments = list_segments(directory)
        self.findings: list[Finding] = []
        self.warnings: list[str] = []
        self.signed: dict[int, list[tuple[Checkpoint, int]]] = {}  # seq -> (checkpoint, line)

    def run(self) -> VerifyReport:
        if self.key is None:
            self.warnings.append("no public key given: checkpoint signatures not checked")
        checkpoint_findings = list(self._read_checkpoints())
        head, records, last = self._scan()
        covered = max(self.signed, default=-1)
        if not self.findings and covered > head.seq:
            checkpoint, line_no = self.signed[covered][0]
            truncated = Finding(
                Problem.TRUNCATED,
                f"stream ends at seq {head.seq} but the checkpoint at {CHECKPOINT_FILE}:{line_no} "
                f"({checkpoint.time:%Y-%m-%d %H:%M:%S}Z) covers seq {covered}: records were cut",
                last.segment if last else None,
                (last.number + 1) if last else 1,
                head.seq + 1,
                None,
            )
            self.findings.append(truncated)
        if not self.signed:
            self.warnings.append("no valid checkpoint: a cut tail cannot be detected")
        elif head.seq > covered and not self.findings:
            self.warnings.append(f"{head.seq - covered} records after the last checkpoint")
        self.findings.extend(checkpoint_findings)
        return VerifyReport(
            self.tenant,
            self.directory,
            records,
            len(self.segments),
            head,
            sum(len(v) for v in self.signed.values()),
            covered,
            tuple(self.findings),
            tuple(self.warnings),
        )

    def _read_checkpoints(self) -> Iterator[Finding]:
        path = self.directory / CHECKPOINT_FILE
        if not path.exists():
            return
        for line in read_lines(path):
            if not line.complete:
                self.warnings.append(f"{CHECKPOINT_FILE} ends in an incomplete line")
                continue
            try:
                checkpoint = Checkpoint.from_line(line.data)
            except AuthzError as exc:
                yield _finding(Problem.BAD_CHECKPOINT, exc.message, line, None)
                continue
            if checkpoint.stream != self.tenant:
                msg = f"checkpoint is for stream `{checkpoint.stream}`"
                yield _finding(Problem.BAD_CHECKPOINT, msg, line, checkpoint.seq)
            elif self.key is not None and not checkpoint.signature_valid(self.key):
                msg = f"signature does not verify (signed by key `{checkpoint.key_id}`)"
                yield _finding(Problem.BAD_SIGNATURE, msg, line, checkpoint.seq)
            else:
                self.signed.setdefault(checkpoint.seq, []).append((checkpoint, line.number))

    def _scan(self) -> tuple[ChainHead, int, Line | None]:
        head, count, last = ChainHead(), 0, None
        previous_number = 0
        for index, (number, path) in enumerate(self.segments):
            if number != previous_number + 1:
                msg = f"segment {previous_number + 1:06d} is missing before {path.name}"
                self.findings.append(
                    Finding(Problem.MISSING_SEGMENT, msg, path, 1, head.seq + 1, None)
                )
                return head, count, last
            newest = index == len(self.segments) - 1
            for line in read_lines(path):
                if not line.complete and newest:
                    self.warnings.append(f"{path.name}:{line.number} is an incomplete last line")
                    break
                finding = self._check(line, head)
                if finding is not None:
                    self.findings.append(finding)
                    return head, count, last
                data = json.loads(line.data)
                head, count, last = ChainHead(data["seq"], data["hash"]), count + 1, line
            previous_number = number
        return head, count, last

    def _check(self, line: Line, head: ChainHead) -> Finding | None:
        expected = head.seq + 1
        try:
            data = json.loads(line.data)
        except ValueError as exc:
            return _finding(Problem.MALFORMED, f"not json ({exc})", line, expected)
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), t) for k, t in (("seq", int), ("hash", str), ("prev_hash", str))
        ):
            return _finding(Problem.MALFORMED, "lacks seq, hash or prev_hash", line, expected)
        seq, hash_ = data["seq"], data["hash"]
        if not line.complete:
            return _finding(Problem.MALFORMED, "line has no newline", line, seq, data)
        try:
            canonical = canonical_json(data) == line.data
        except AuthzError:
            canonical = False
        if not canonical:
            return _finding(Problem.MALFORMED, "not in canonical form: edited", line, seq, data)
        if recompute_hash(data) != hash_:
            return _finding(
                Problem.HASH_MISMATCH, "content does not match its hash", line, seq, data
            )
        if seq != expected:
            return self._sequence_finding(line, seq, expected, data)
        if data["prev_hash"] != head.hash:
            msg = "prev_hash is not the previous record's hash: forged or spliced"
            return _finding(Problem.BROKEN_LINK, msg, line, seq, data)
        if data.get("tenant") != self.tenant:
            msg = f"record of tenant `{data.get('tenant')}` in stream `{self.tenant}`"
            return _finding(Problem.WRONG_STREAM, msg, line, seq, data)
        for checkpoint, line_no in self.signed.get(seq, ()):
            if checkpoint.head_hash != hash_:
                msg = (
                    f"hash differs from the checkpoint at {CHECKPOINT_FILE}:{line_no}: "
                    "the chain was rewritten at or before this record"
                )
                return _finding(Problem.CHECKPOINT_MISMATCH, msg, line, seq, data)
        return None

    def _sequence_finding(
        self, line: Line, seq: int, expected: int, data: dict[str, Any]
    ) -> Finding:
        if seq < expected:
            msg = f"seq {seq} again where {expected} was expected: inserted or duplicated"
            return _finding(Problem.DUPLICATE_SEQ, msg, line, seq, data)
        if expected in self._all_seqs():
            msg = f"seq {seq} where {expected} was expected, and {expected} comes later: reordered"
            return _finding(Problem.REORDERED, msg, line, seq, data)
        missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
        return _finding(
            Problem.MISSING_RECORD, f"seq {missing} removed before this record", line, seq, data
        )

    def _all_seqs(self) -> set[int]:
        # A second pass, only on failure, so that a swap is not reported as a removal.
        seqs: set[int] = set()
        for _, path in self.segments:
            for line in read_lines(path):
                try:
                    seqs.add(int(json.loads(line.data)["seq"]))
                except (ValueError, KeyError, TypeError):
                    continue
        return seqs


def _finding(
    problem: Problem, message: str, line: Line, seq: int | None, data: dict[str, Any] | None = None
) -> Finding:
    decision_id = data.get("decision_id") if data else None
    return Finding(
        problem,
        message,
        line.segment,
        line.number,
        seq,
        decision_id if isinstance(decision_id, str) else None,
    )
