"""Verification of file-sink streams: chain, sequence and signed checkpoints.

Per line, in this order: the line is canonical JSON; its own hash matches its content
(any edited byte fails here); its `seq` is the next one (removed, reordered, inserted
or duplicated records fail here); its `prev_hash` is the previous line's hash (a forged
line with a recomputed hash fails here); it belongs to this stream's tenant; and where
a valid checkpoint names its seq, the hashes agree (a rewritten chain fails here).
After the last line, a checkpoint beyond the end reveals a cut tail, or a stream
emptied or removed (every checkpoint names every stream of its root).

Records no checkpoint covers (the unsigned tail) are judged against the newest
checkpoint (`verify_tail.py`): with public keys, a tail that should have been signed
by now, or that follows the writer's final checkpoint, is a failure.

Each checkpoint is verified with the key it names, among the public keys given: a log
whose signing key was rotated needs every key it was signed with.

The scan stops at the first bad line: everything after it is suspect, and the first
one is what an investigator needs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from authz_service.decisionlog.chain import ChainHead, recompute_hash
from authz_service.decisionlog.checkpoint import PublicKeys, keys_by_id
from authz_service.decisionlog.layout import (
    Line,
    list_segments,
    list_streams,
    read_lines,
    stream_dir_name,
    tenant_from_dir_name,
)
from authz_service.decisionlog.record import canonical_json
from authz_service.decisionlog.verify_checkpoints import (
    KeysById,
    RootCheckpoints,
    Vouch,
    read_root_checkpoints,
    read_stream_checkpoints,
)
from authz_service.decisionlog.verify_layout import (
    unexpected_in_root_reports,
    unexpected_in_stream_findings,
)
from authz_service.decisionlog.verify_report import Finding, Problem, VerifyReport, finding_at
from authz_service.decisionlog.verify_tail import Tail
from authz_service.errors import AuthzError, NotFound

__all__ = ["verify_all", "verify_stream"]


def verify_stream(
    path: Path, public_keys: PublicKeys | None, *, now: datetime | None = None
) -> VerifyReport:
    """Verify one stream directory (a file inside it names its directory) against the
    checkpoints of its root (the directory above it), each checkpoint with the key it
    names among `public_keys` (one key, or every key the log was signed with).

    Without `public_keys` signatures are not checked, checkpoints are trusted as written,
    and an unsigned tail is only a warning; the report warns about it.
    """
    directory = path.parent if path.is_file() else path
    if not directory.is_dir():
        raise NotFound(f"decision log stream `{path}` does not exist")
    keys = _by_id(public_keys)
    root = read_root_checkpoints(directory.parent, keys)
    tenant = tenant_from_dir_name(directory.name)
    return _Verifier(directory, tenant, keys, root, now).run()


def verify_all(
    root: Path,
    public_keys: PublicKeys | None,
    *,
    streams: Sequence[tuple[str, Path]] | None = None,
    tenant: str | None = None,
    now: datetime | None = None,
) -> list[VerifyReport]:
    """Verify the streams of one writer root: `streams` (default: every stream
    directory) plus every stream its checkpoints name, which must exist, and report every
    entry of the root its writer does not make; sorted by name. `tenant` restricts all
    three to one tenant."""
    if not root.is_dir():
        raise NotFound(f"decision log directory `{root}` does not exist")
    keys = _by_id(public_keys)
    checkpoints = read_root_checkpoints(root, keys)
    found = dict(list_streams(root) if streams is None else streams)
    for named in checkpoints.tenants() - found.keys():
        found[named] = root / stream_dir_name(named)  # removed: verified as an empty stream
    reports = [
        _Verifier(directory, name, keys, checkpoints, now).run()
        for name, directory in found.items()
        if tenant is None or name == tenant
    ]
    reports.extend(unexpected_in_root_reports(root, tenant))
    return sorted(reports, key=lambda report: report.stream)


def _by_id(public_keys: PublicKeys | None) -> KeysById | None:
    return None if public_keys is None else keys_by_id(public_keys)


class _Verifier:
    def __init__(
        self,
        directory: Path,
        tenant: str,
        keys: KeysById | None,
        root: RootCheckpoints,
        now: datetime | None,
    ) -> None:
        self.directory, self.tenant, self.keys, self.root = directory, tenant, keys, root
        self.now = now or datetime.now(UTC)
        self.segments = list_segments(directory)
        self.findings: list[Finding] = []
        self.warnings: list[str] = list(root.warnings)
        vouches, self.checkpoint_findings, warnings = read_stream_checkpoints(
            directory, tenant, keys
        )
        self.warnings.extend(warnings)
        self.vouched: dict[int, list[Vouch]] = {}  # seq -> what vouches for it
        for vouch in [*root.vouches(tenant), *vouches]:
            self.vouched.setdefault(vouch.head.seq, []).append(vouch)
        self.covered = max(self.vouched, default=-1)
        self.tail = Tail(self.covered, root.newest, keys is not None)

    def run(self) -> VerifyReport:
        if self.keys is None:
            self.warnings.append("no public key given: checkpoint signatures not checked")
        head, records, last = self._scan()
        if not self.findings and self.covered > head.seq:
            self.findings.append(self._truncated(head, last))
        self.findings.extend(unexpected_in_stream_findings(self.directory))
        # Bad checkpoints come before the tail's verdict, which rests on the good ones.
        self.findings.extend(self.root.findings)
        self.findings.extend(self.checkpoint_findings)
        if not self.findings:
            finding, warnings = self.tail.judge(self.now, records)
            self.findings.extend([finding] if finding is not None else [])
            self.warnings.extend(warnings)
        return VerifyReport(
            self.tenant,
            self.directory,
            records,
            len(self.segments),
            head,
            sum(len(v) for v in self.vouched.values()),
            self.covered,
            max((v.time for vs in self.vouched.values() for v in vs), default=None),
            tuple(self.findings),
            tuple(self.warnings),
        )

    def _truncated(self, head: ChainHead, last: Line | None) -> Finding:
        vouch = self.vouched[self.covered][0]
        by = f"the checkpoint at {vouch.where} ({vouch.time:%Y-%m-%d %H:%M:%S}Z)"
        if head.seq < 0:
            message = (
                f"stream has no records but {by} covers seq {self.covered}: "
                "its files were emptied or removed"
            )
        else:
            message = (
                f"stream ends at seq {head.seq} but {by} covers seq {self.covered}: "
                "records were cut"
            )
        return Finding(
            Problem.TRUNCATED,
            message,
            last.segment if last else None,
            (last.number + 1) if last else None,
            head.seq + 1,
            None,
        )

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
                    self.warnings.extend(self.tail.add_torn(line, head.seq + 1))
                    break
                finding = self._check(line, head)
                if finding is not None:
                    self.findings.append(finding)
                    return head, count, last
                data = json.loads(line.data)
                head, count, last = ChainHead(data["seq"], data["hash"]), count + 1, line
                self.tail.add(line, data)
            previous_number = number
        return head, count, last

    def _check(self, line: Line, head: ChainHead) -> Finding | None:
        expected = head.seq + 1
        try:
            data = json.loads(line.data)
        except ValueError as exc:
            return finding_at(Problem.MALFORMED, f"not json ({exc})", line, expected)
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), t) for k, t in (("seq", int), ("hash", str), ("prev_hash", str))
        ):
            return finding_at(Problem.MALFORMED, "lacks seq, hash or prev_hash", line, expected)
        seq, hash_ = data["seq"], data["hash"]
        if not line.complete:
            return finding_at(Problem.MALFORMED, "line has no newline", line, seq, data)
        try:
            canonical = canonical_json(data) == line.data
        except AuthzError:
            canonical = False
        if not canonical:
            return finding_at(Problem.MALFORMED, "not in canonical form: edited", line, seq, data)
        if recompute_hash(data) != hash_:
            return finding_at(
                Problem.HASH_MISMATCH, "content does not match its hash", line, seq, data
            )
        if seq != expected:
            return self._sequencefinding_at(line, seq, expected, data)
        if data["prev_hash"] != head.hash:
            msg = "prev_hash is not the previous record's hash: forged or spliced"
            return finding_at(Problem.BROKEN_LINK, msg, line, seq, data)
        if data.get("tenant") != self.tenant:
            msg = f"record of tenant `{data.get('tenant')}` in stream `{self.tenant}`"
            return finding_at(Problem.WRONG_STREAM, msg, line, seq, data)
        for vouch in self.vouched.get(seq, ()):
            if vouch.head.hash != hash_:
                msg = (
                    f"hash differs from the checkpoint at {vouch.where}: "
                    "the chain was rewritten at or before this record"
                )
                return finding_at(Problem.CHECKPOINT_MISMATCH, msg, line, seq, data)
        return None

    def _sequencefinding_at(
        self, line: Line, seq: int, expected: int, data: dict[str, Any]
    ) -> Finding:
        if seq < expected:
            msg = f"seq {seq} again where {expected} was expected: inserted or duplicated"
            return finding_at(Problem.DUPLICATE_SEQ, msg, line, seq, data)
        if expected in self._all_seqs():
            msg = f"seq {seq} where {expected} was expected, and {expected} comes later: reordered"
            return finding_at(Problem.REORDERED, msg, line, seq, data)
        missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
        return finding_at(
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
