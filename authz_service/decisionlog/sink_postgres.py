"""PostgreSQL mirror of the decision log, for querying (the files stay the record).

Rows keep the exact stored line, so an entry read back from the database re-checks its
own hash; `jsonb` alone would not do, as it reorders keys and the hash input is lost.
`jsonb` cannot hold U+0000 either, which a Check's context or reason may (api/nul.py):
in the `record` column a NUL becomes U+FFFD, so that one such entry does not fail every
insert and catch-up after it.
The table is range-partitioned by month on `time`; partitions are created on demand.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from authz_service.decisionlog.chain import LogEntry, entry_from_line
from authz_service.decisionlog.layout import list_segments, list_streams, read_lines
from authz_service.decisionlog.query import RecordFilter

__all__ = ["MIGRATION_SQL", "PostgresSink"]

MIGRATION_SQL = """
CREATE TABLE IF NOT EXISTS decision_log (
    tenant       text        NOT NULL,
    -- the writer root: '' for a single writer, `worker-N` when each server worker has
    -- its own (then one tenant has one chain per worker)
    source       text        NOT NULL DEFAULT '',
    seq          bigint      NOT NULL,
    time         timestamptz NOT NULL,
    decision_id  text        NOT NULL,
    kind         text        NOT NULL,
    subject      text        NOT NULL,
    actor        text,
    action       text        NOT NULL,
    resource     text        NOT NULL,
    decision     text        NOT NULL,
    revision     bigint      NOT NULL,
    prev_hash    text        NOT NULL,
    hash         text        NOT NULL,
    line         text        NOT NULL,
    record       jsonb       NOT NULL,
    -- A key on a partitioned table must contain the partition column; (tenant, source,
    -- seq) alone is unique in practice because one entry has one time.
    PRIMARY KEY (tenant, source, seq, time)
) PARTITION BY RANGE (time);
CREATE INDEX IF NOT EXISTS decision_log_tenant_time ON decision_log (tenant, time);
CREATE INDEX IF NOT EXISTS decision_log_decision_id ON decision_log (decision_id);
CREATE INDEX IF NOT EXISTS decision_log_subject ON decision_log (tenant, subject, time);
"""

_INSERT = """
INSERT INTO decision_log (tenant, seq, time, decision_id, kind, subject, actor, action,
    resource, decision, revision, prev_hash, hash, line, record, source)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::jsonb, $16)
ON CONFLICT DO NOTHING
"""
_PARTITION_LOCK = 0x6465_6C6F_6721  # any constant: serialises partition creation
_CATCH_UP_CHUNK = 1000


def _month(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: datetime) -> datetime:
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


class PostgresSink:
    """Implements `DecisionLogMirror`: idempotent inserts, and catch-up from the files.

    `source` names the writer root the entries come from (`worker-N` when each server
    worker writes its own root), so that the workers' chains of one tenant stay apart.
    """

    def __init__(self, pool: asyncpg.Pool, *, source: str = "") -> None:
        self._pool = pool
        self._source = source
        self._months: set[datetime] = set()  # partitions known to exist

    async def write(self, entries: Sequence[LogEntry]) -> None:
        if not entries:
            return
        for month in {_month(e.record.time) for e in entries} - self._months:
            await self._create_partition(month)
        async with self._pool.acquire() as conn:
            rows = [
                (
                    e.tenant, e.seq, e.record.time, e.record.decision_id, str(e.record.kind),
                    e.record.subject, e.record.actor, e.record.action, e.record.resource,
                    str(e.record.decision), e.record.revision, e.prev_hash, e.hash,
                    e.line.decode("utf-8"), _jsonb(e.line.decode("utf-8")), self._source,
                )
                for e in entries
            ]  # fmt: skip
            async with conn.transaction():
                await conn.executemany(_INSERT, rows)

    async def catch_up(self, root: Path) -> int:
        copied = 0
        for tenant, directory in await asyncio.to_thread(list_streams, root):
            last = await self._pool.fetchval(
                "SELECT max(seq) FROM decision_log WHERE tenant = $1 AND source = $2",
                tenant,
                self._source,
            )
            after = -1 if last is None else int(last)
            for path in await asyncio.to_thread(_segments_after, directory, after):
                entries = await asyncio.to_thread(_read_after, path, after)
                for start in range(0, len(entries), _CATCH_UP_CHUNK):
                    await self.write(entries[start : start + _CATCH_UP_CHUNK])
                copied += len(entries)
        return copied

    async def query(self, where: RecordFilter, *, limit: int = 1000) -> list[LogEntry]:
        """Entries matching `where`, oldest first, each re-checked against its hash."""
        clauses: list[str] = []
        args: list[object] = []
        exact = {
            "tenant": where.tenant, "subject": where.subject, "actor": where.actor,
            "resource": where.resource, "action": where.action, "decision": where.decision,
            "kind": where.kind, "decision_id": where.decision_id,
        }  # fmt: skip
        for column, value in exact.items():
            if value is not None:
                args.append(str(value))
                clauses.append(f"{column} = ${len(args)}")  # column names are constants
        for op, bound in ((">=", where.since), ("<", where.until)):
            if bound is not None:
                args.append(bound)
                clauses.append(f"time {op} ${len(args)}")
        args.append(limit)
        sql = (
            "SELECT line FROM decision_log"
            + (" WHERE " + " AND ".join(clauses) if clauses else "")
            + f" ORDER BY time, tenant, source, seq LIMIT ${len(args)}"
        )
        rows = await self._pool.fetch(sql, *args)
        return [entry_from_line(row["line"].encode("utf-8")) for row in rows]

    async def _create_partition(self, month: datetime) -> None:
        end = _next_month(month)
        name = f"decision_log_y{month:%Y}m{month:%m}"  # built from a date: safe as identifier
        async with self._pool.acquire() as conn, conn.transaction():
            # CREATE ... IF NOT EXISTS still races between sessions; the lock makes it safe.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _PARTITION_LOCK)
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF decision_log "
                f"FOR VALUES FROM ('{month.isoformat()}') TO ('{end.isoformat()}')"
            )
        self._months.add(month)


def _jsonb(line: str) -> str:
    """`line` as the `record` column can hold it: every NUL in a string or key made U+FFFD.
    Only a line holding the escape `\\u0000` can have one (a NUL is written escaped)."""
    if "\\u0000" not in line:
        return line
    return json.dumps(_without_nul(json.loads(line)), separators=(",", ":"))


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _segments_after(directory: Path, seq: int) -> list[Path]:
    """Segments that may hold entries after `seq`: skip those whose successor starts
    at or before `seq` + 1, so a catch-up does not reread the whole history."""
    segments = [path for _, path in list_segments(directory)]
    keep = []
    for index, path in enumerate(segments):
        successor = segments[index + 1] if index + 1 < len(segments) else None
        first = _first_seq(successor) if successor is not None else None
        if first is not None and first <= seq + 1:
            continue
        keep.append(path)
    return keep


def _first_seq(path: Path) -> int | None:
    for line in read_lines(path):
        return entry_from_line(line.data).seq if line.complete else None
    return None


def _read_after(path: Path, seq: int) -> list[LogEntry]:
    entries = (entry_from_line(line.data) for line in read_lines(path) if line.complete)
    return [entry for entry in entries if entry.seq > seq]
