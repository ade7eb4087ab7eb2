"""Reading the file sink: filter records, find one decision, and format them.

Used by `authz audit query` and `authz audit explain DECISION_ID`. Filtering runs on
the decoded JSON before a record is rebuilt, and times compare as text: the stored
form (fixed-width RFC 3339 UTC) sorts the same way the instants do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from authz_service.decisionlog.chain import LogEntry, entry_from_line
from authz_service.decisionlog.layout import (
    list_segments,
    list_streams,
    read_lines,
    stream_dir_name,
)
from authz_service.decisionlog.record import Decision, DecisionKind, format_time
from authz_service.errors import AuthzError, FailedPrecondition, NotFound, echo

__all__ = [
    "RecordFilter",
    "StoredEntry",
    "find_decision",
    "format_explain",
    "format_jsonl",
    "format_table",
    "iter_entries",
]


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """Every field that is set must match exactly; `since` is inclusive, `until` exclusive."""

    tenant: str | None = None
    subject: str | None = None
    actor: str | None = None
    resource: str | None = None
    action: str | None = None
    decision: Decision | None = None
    kind: DecisionKind | None = None
    decision_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _compile(where: RecordFilter) -> tuple[dict[str, str], str | None, str | None]:
    """(exact-match fields as stored text, since, until) for `_matches`."""
    fields = {
        "tenant": where.tenant,
        "subject": where.subject,
        "actor": where.actor,
        "resource": where.resource,
        "action": where.action,
        "decision": where.decision,
        "kind": where.kind,
        "decision_id": where.decision_id,
    }
    exact = {k: str(v) for k, v in fields.items() if v is not None}
    since = format_time(where.since) if where.since is not None else None
    until = format_time(where.until) if where.until is not None else None
    return exact, since, until


@dataclass(frozen=True, slots=True)
class StoredEntry:
    entry: LogEntry
    segment: Path
    line: int


def iter_entries(root: Path, where: RecordFilter | None = None) -> Iterator[StoredEntry]:
    """Entries matching `where`, stream by stream (sorted by tenant), in chain order.

    Each yielded entry has passed its own hash check; a damaged line raises
    `FailedPrecondition` naming it (run verify for the full chain).
    """
    where = where or RecordFilter()
    exact, since, until = _compile(where)
    if where.tenant is not None:
        streams = [(where.tenant, root / stream_dir_name(where.tenant))]
    else:
        streams = list_streams(root)
    for _, directory in streams:
        if not directory.is_dir():
            continue
        for _, path in list_segments(directory):
            for line in read_lines(path):
                if not line.complete:
                    continue  # a write in progress at the end of the newest segment
                try:
                    data: dict[str, Any] = json.loads(line.data)
                    if not _matches(data, exact, since, until):
                        continue
                    entry = entry_from_line(line.data)
                except (ValueError, AuthzError) as exc:
                    raise FailedPrecondition(
                        f"damaged decision log record at `{path}`:{line.number}; "
                        "run `authz audit verify`"
                    ) from exc
                yield StoredEntry(entry, path, line.number)


def _matches(
    data: dict[str, Any], exact: dict[str, str], since: str | None, until: str | None
) -> bool:
    if any(data.get(k) != v for k, v in exact.items()):
        return False
    time = data.get("time", "")
    return (since is None or time >= since) and (until is None or time < until)


def find_decision(root: Path, decision_id: str, *, tenant: str | None = None) -> StoredEntry:
    for found in iter_entries(root, RecordFilter(tenant=tenant, decision_id=decision_id)):
        return found
    raise NotFound(f"decision `{echo(decision_id)}` is not in the decision log")


_COLUMNS: tuple[tuple[str, Callable[[LogEntry], str]], ...] = (
    ("TIME", lambda e: format_time(e.record.time)),
    ("DECISION_ID", lambda e: e.record.decision_id),
    ("TENANT", lambda e: e.record.tenant),
    ("KIND", lambda e: str(e.record.kind)),
    ("SUBJECT", lambda e: e.record.subject),
    ("ACTOR", lambda e: e.record.actor or "-"),
    ("ACTION", lambda e: e.record.action),
    ("RESOURCE", lambda e: e.record.resource),
    ("DECISION", lambda e: str(e.record.decision)),
    ("REVISION", lambda e: str(e.record.revision)),
    ("CACHE", lambda e: "hit" if e.record.cache_hit else "miss"),
)


def format_table(entries: Iterable[StoredEntry]) -> str:
    """A plain-text table, one row per record, columns padded to the widest cell."""
    rows = [[get(s.entry) for _, get in _COLUMNS] for s in entries]
    header = [name for name, _ in _COLUMNS]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines) + "\n"


def format_jsonl(entries: Iterable[StoredEntry]) -> Iterator[str]:
    """The stored lines themselves: exactly the bytes that were hashed."""
    for stored in entries:
        yield stored.entry.line.decode("utf-8")


def format_explain(stored: StoredEntry) -> str:
    """Everything about one decision, for `authz audit explain`."""
    record, entry = stored.entry.record, stored.entry
    fields = record.to_dict()
    structured = {k: fields.pop(k) for k in ("context", "explanation", "details")}
    width = max(len(k) for k in fields)
    out = [f"{k.ljust(width)}  {_plain(v)}" for k, v in fields.items() if k != "format"]
    for name, value in structured.items():
        if value:
            out.append(f"{name}:")
            out.extend(
                "  " + line for line in json.dumps(value, indent=2, sort_keys=True).splitlines()
            )
    out.append(f"{'stored at'.ljust(width)}  {stored.segment}:{stored.line}")
    out.append(f"{'seq'.ljust(width)}  {entry.seq}")
    out.append(f"{'prev_hash'.ljust(width)}  {entry.prev_hash}")
    out.append(f"{'hash'.ljust(width)}  {entry.hash}")
    return "\n".join(out) + "\n"


def _plain(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool | list):
        return json.dumps(value)
    return str(value)
