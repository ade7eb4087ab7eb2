"""What the checkpoints of a writer root vouch for, read once per root.

A `Vouch` is one signed statement "stream S had head (seq, hash) at time T". The root's
`checkpoints.jsonl` (format 2) gives one per stream per checkpoint; a stream's own
`checkpoints.jsonl` (format 1, older writers) gives one per line. Lines that do not
parse, name another stream, name a key that was not given or do not verify with the key
they name vouch for nothing and become findings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from authz_service.decisionlog.chain import ChainHead
from authz_service.decisionlog.checkpoint import Checkpoint
from authz_service.decisionlog.checkpoint_v1 import StreamCheckpoint
from authz_service.decisionlog.layout import CHECKPOINT_FILE, Line, read_lines
from authz_service.decisionlog.verify_report import Finding, Problem, finding_at
from authz_service.errors import AuthzError, echo

__all__ = [
    "KeysById",
    "RootCheckpoints",
    "Vouch",
    "read_root_checkpoints",
    "read_stream_checkpoints",
]

KeysById = Mapping[str, Ed25519PublicKey]  # `checkpoint.keys_by_id`


@dataclass(frozen=True, slots=True)
class Vouch:
    head: ChainHead
    time: datetime
    where: str  # `checkpoints.jsonl:3` (the root's) or `acme/checkpoints.jsonl:2` (format 1)


@dataclass(frozen=True, slots=True)
class RootCheckpoints:
    """The valid format 2 checkpoints of one root, with their line numbers, and the bad lines."""

    checkpoints: tuple[tuple[Checkpoint, int], ...]
    findings: tuple[Finding, ...]
    warnings: tuple[str, ...]

    @property
    def newest(self) -> tuple[Checkpoint, int] | None:
        """The latest by time (by line among equal times): what the writer signed last."""
        return max(self.checkpoints, key=lambda c: (c[0].time, c[1]), default=None)

    def tenants(self) -> set[str]:
        return {tenant for checkpoint, _ in self.checkpoints for tenant in checkpoint.heads}

    def vouches(self, tenant: str) -> list[Vouch]:
        return [
            Vouch(checkpoint.heads[tenant], checkpoint.time, f"{CHECKPOINT_FILE}:{number}")
            for checkpoint, number in self.checkpoints
            if tenant in checkpoint.heads
        ]


def read_root_checkpoints(root: Path, keys: KeysById | None) -> RootCheckpoints:
    """Without `keys` every well-formed checkpoint is taken as written."""
    valid: list[tuple[Checkpoint, int]] = []
    findings: list[Finding] = []
    warnings: list[str] = []
    for line in _lines(root / CHECKPOINT_FILE, CHECKPOINT_FILE, warnings):
        try:
            checkpoint = Checkpoint.from_line(line.data)
        except AuthzError as exc:
            findings.append(finding_at(Problem.BAD_CHECKPOINT, exc.message, line, None))
            continue
        problem = None if keys is None else _signature_problem(checkpoint, keys)
        if problem is not None:
            findings.append(finding_at(Problem.BAD_SIGNATURE, problem, line, None))
        else:
            valid.append((checkpoint, line.number))
    return RootCheckpoints(tuple(valid), tuple(findings), tuple(warnings))


def read_stream_checkpoints(
    directory: Path, tenant: str, keys: KeysById | None
) -> tuple[list[Vouch], list[Finding], list[str]]:
    """The format 1 checkpoints in a stream's own directory (written by older writers)."""
    vouches: list[Vouch] = []
    findings: list[Finding] = []
    warnings: list[str] = []
    where = f"{directory.name}/{CHECKPOINT_FILE}"
    for line in _lines(directory / CHECKPOINT_FILE, where, warnings):
        try:
            checkpoint = StreamCheckpoint.from_line(line.data)
        except AuthzError as exc:
            findings.append(finding_at(Problem.BAD_CHECKPOINT, exc.message, line, None))
            continue
        if checkpoint.stream != tenant:
            msg = f"checkpoint is for stream `{checkpoint.stream}`"
            findings.append(finding_at(Problem.BAD_CHECKPOINT, msg, line, checkpoint.seq))
        elif keys is not None and (problem := _signature_problem(checkpoint, keys)):
            findings.append(finding_at(Problem.BAD_SIGNATURE, problem, line, checkpoint.seq))
        else:
            head = ChainHead(checkpoint.seq, checkpoint.head_hash)
            vouches.append(Vouch(head, checkpoint.time, f"{where}:{line.number}"))
    return vouches, findings, warnings


def _signature_problem(checkpoint: Checkpoint | StreamCheckpoint, keys: KeysById) -> str | None:
    """Why `checkpoint` is not signed by the key it names (None if it is). A key that was
    not given vouches for nothing: naming it is how an auditor learns which is missing."""
    name = echo(checkpoint.key_id)
    key = keys.get(checkpoint.key_id)
    if key is None:
        return f"signed by key `{name}`, which is not one of the public keys given"
    if not checkpoint.signature_valid(key):
        return f"signature does not verify with key `{name}`, the key it names"
    return None


def _lines(path: Path, name: str, warnings: list[str]) -> Iterator[Line]:
    if not path.is_file():
        return
    for line in read_lines(path):
        if line.complete:
            yield line
        else:
            warnings.append(f"{name} ends in an incomplete line")
