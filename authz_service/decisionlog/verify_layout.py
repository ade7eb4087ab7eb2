"""What verify makes of entries of a log that its writer never makes.

Readers read only what the writer makes (`layout.py`), so anything else in a root
hides what it holds: a stream renamed to `%64emo` is gone from `demo`, a copy of one
is not read, and neither is a second segment 2 called `0000002.jsonl`. Verify names
each such entry as an `unexpected_file` finding rather than skipping it (or reading it
as what it is not), so that a renamed, copied or added file cannot go unseen.
"""

from __future__ import annotations

from pathlib import Path

from authz_service.decisionlog.chain import ChainHead
from authz_service.decisionlog.layout import (
    claimed_tenant,
    segment_name,
    shown,
    stream_dir_name,
    unexpected_in_root,
    unexpected_in_stream,
)
from authz_service.decisionlog.verify_report import Finding, Problem, VerifyReport

__all__ = ["unexpected_in_root_reports", "unexpected_in_stream_findings"]


def unexpected_in_root_reports(root: Path, tenant: str | None) -> list[VerifyReport]:
    """One failed report per unexpected entry of `root`, named as the entry is. With
    `tenant`, only the entries whose names decode to it: whose stream they may have been
    (the others are no business of one tenant's, and may name other tenants)."""
    return [
        _report(path)
        for path in unexpected_in_root(root)
        if tenant is None or claimed_tenant(path.name) == tenant
    ]


def _report(path: Path) -> VerifyReport:
    name, kind = shown(path.name), "directory" if path.is_dir() else "file"
    tenant = claimed_tenant(path.name)
    if tenant is not None and stream_dir_name(tenant) != path.name:
        message = (
            f"{kind} `{name}` is not a stream: tenant `{shown(tenant)}`'s stream is "
            f"`{stream_dir_name(tenant)}`; renamed, copied or added, it is not read"
        )
    else:
        message = f"{kind} `{name}` is not part of the log: added, it is not read"
    finding = Finding(Problem.UNEXPECTED_FILE, message, path, None, None, None)
    return VerifyReport(name, path, 0, 0, ChainHead(), 0, -1, None, (finding,), ())


def unexpected_in_stream_findings(directory: Path) -> list[Finding]:
    """One finding per unexpected entry of a stream directory."""
    return [_stream_finding(path) for path in unexpected_in_stream(directory)]


def _stream_finding(path: Path) -> Finding:
    name, kind = shown(path.name), "directory" if path.is_dir() else "file"
    digits, _, extension = path.name.partition(".")
    number = int(digits) if digits.isascii() and digits.isdigit() else 0
    if extension == "jsonl" and number >= 1 and segment_name(number) != path.name:
        message = (
            f"{kind} `{name}` is not a segment: segment {number} is "
            f"`{segment_name(number)}`; renamed, copied or added, it is not read"
        )
    else:
        message = f"{kind} `{name}` is not part of the stream: added, it is not read"
    return Finding(Problem.UNEXPECTED_FILE, message, path, None, None, None)
