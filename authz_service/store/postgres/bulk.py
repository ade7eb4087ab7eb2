"""The transaction of a bulk import: COPY of prepared text rows, at one new revision.

Two ways in, both one transaction (all or nothing):

- **direct**, when the tenant has no live relationships (a first import): the tenant is
  locked and its revision bumped first, then the rows are sent by COPY straight into
  `relationships`, in the order of the forward index. If the whole table is empty (a new
  deployment) its secondary indexes (except the small partial one over role grants) are
  dropped before the COPY and built again after it, in the same transaction: one sort
  per index instead of a million scattered index inserts, and PostgreSQL's sort notices
  rows that arrive in order and skips its work for the forward and unique indexes. The
  table lock that takes is harmless on an empty table, and a rollback restores the
  indexes. A relationship named twice breaks the unique index and the import is redone
  the staged way, which names the two lines.
- **staged**, otherwise: rows are copied into a temporary table, then the tenant is
  locked, duplicates are looked for, existing rows are ended and the new ones inserted
  (TOUCH semantics). Other writers of the tenant wait only for these final statements.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import asyncpg

from authz_service.errors import InvalidArgument
from authz_service.store.postgres.db import Database
from authz_service.store.postgres.dberrors import translated
from authz_service.store.postgres.sql import KEY_COLUMNS
from authz_service.store.postgres.tenants import CREATE_SQL
from authz_service.store.postgres.writes import bump_head

if TYPE_CHECKING:
    from authz_service.store.postgres.writes import Connection

__all__ = ["NO_STATEMENT_TIMEOUT", "Chunks", "LoadResult", "copy_text", "load"]

# A bulk load's COPY and index builds may rightly run for minutes: its transaction lifts
# the pool's statement timeout (`store.server_settings`) for itself only.
NO_STATEMENT_TIMEOUT = (
    "SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0"
)


class Chunks(Protocol):
    """The rows to load as COPY text, in chunks: a fresh iterator per call, since a failed
    direct import is read again the staged way."""

    def numbered(self, end: str) -> AsyncIterator[bytes]:
        """In file order, each row begun by its line number and a tab, ended by `end`."""
        ...

    def in_key_order(self, prefix: str, end: str) -> AsyncIterator[bytes]:
        """Sorted by their columns (resource, relation, subject: the forward index's order;
        a very large file in sorted runs), each row begun by `prefix` and ended by `end`."""
        ...


_VALUE_COLUMNS = (
    "resource_type, resource_id, relation, subject_type, subject_id, subject_relation, "
    "caveat_name, caveat_context, expires_at"
)

_STAGE_SQL = (
    "CREATE TEMPORARY TABLE import_rows (line integer, "
    + ", ".join(f'{c} text COLLATE "C"' for c in _VALUE_COLUMNS.split(", ")[:8])
    + ", expires_at timestamptz) ON COMMIT DROP"
)

_DUPLICATE_SQL = f"""
SELECT min(line) AS first, max(line) AS second, {KEY_COLUMNS}
  FROM import_rows GROUP BY {KEY_COLUMNS} HAVING count(*) > 1 LIMIT 1
"""

_STAMP_SQL = """
UPDATE relationships AS r SET deleted_rev = $2 FROM import_rows AS u
 WHERE r.tenant = $1 AND r.deleted_rev IS NULL
   AND r.resource_type = u.resource_type AND r.resource_id = u.resource_id
   AND r.relation = u.relation AND r.subject_type = u.subject_type
   AND r.subject_id = u.subject_id AND r.subject_relation = u.subject_relation
"""

_INSERT_SQL = f"""
INSERT INTO relationships ({KEY_COLUMNS}, caveat_name, caveat_context, expires_at,
                           tenant, created_rev)
SELECT {KEY_COLUMNS}, caveat_name, caveat_context::jsonb, expires_at, $1, $2
  FROM import_rows
"""

_LIVE_SQL = "SELECT EXISTS (SELECT 1 FROM relationships WHERE tenant = $1 AND deleted_rev IS NULL)"

# Indexes that back no constraint: these can be dropped and rebuilt. Not the role
# grants' (migration 0010): few rows match it, so keeping it through the COPY costs a
# test per row, where building it again would read the whole table once more.
_INDEXES_SQL = """
SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'relationships'::regclass
   AND c.relname <> 'relationships_role_grants'
   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
"""


@dataclass(frozen=True, slots=True)
class LoadResult:
    revision: int
    count: int
    replaced: int


class _Staged(Exception):
    """Roll the direct attempt back and import the staged way: the tenant has live
    relationships, or the COPY met one twice (the staged import names the lines)."""


def copy_text(value: str) -> str:
    """`value` as one field of COPY's text format."""
    for raw, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        value = value.replace(raw, escaped)
    return value


async def load(
    db: Database, tenant: str, chunks: Chunks, *, create_tenant: bool = False
) -> LoadResult:
    """`create_tenant`: register the tenant (if it is not) in the load's own transaction,
    so that a load that fails leaves no tenant behind either."""
    with translated():
        try:
            async with db.acquire() as conn, conn.transaction():
                await conn.execute(NO_STATEMENT_TIMEOUT)
                if create_tenant:
                    await conn.execute(CREATE_SQL, tenant)
                revision = await bump_head(conn, tenant)
                if await conn.fetchval(_LIVE_SQL, tenant):
                    raise _Staged
                return await _direct(conn, tenant, revision, chunks)
        except _Staged:
            pass  # rolled back, the revision bump included
        async with db.acquire() as conn, conn.transaction():
            await conn.execute(NO_STATEMENT_TIMEOUT)
            if create_tenant:
                await conn.execute(CREATE_SQL, tenant)
            return await _staged(conn, tenant, chunks)


async def _direct(conn: Connection, tenant: str, revision: int, chunks: Chunks) -> LoadResult:
    prefix = f"{copy_text(tenant)}\t"
    rebuild = await _drop_indexes_if_empty(conn)
    try:
        status = await conn.copy_to_table(
            "relationships",
            source=chunks.in_key_order(prefix, f"\t{revision}\n"),
            columns=["tenant", *_VALUE_COLUMNS.split(", "), "created_rev"],
            format="text",
        )
        for definition in rebuild:
            await conn.execute(definition)
    except asyncpg.UniqueViolationError:
        raise _Staged from None
    return LoadResult(revision, int(status.rsplit(" ", 1)[-1]), 0)


async def _drop_indexes_if_empty(conn: Connection) -> list[str]:
    """Drop the table's secondary indexes (those `_INDEXES_SQL` lists) when it holds no
    row at all; return their definitions to build them again after the COPY."""
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM relationships)"):
        return []
    # Checked again under the lock: a row committed meanwhile keeps the indexes.
    await conn.execute("LOCK TABLE relationships IN ACCESS EXCLUSIVE MODE")
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM relationships)"):
        return []
    indexes = await conn.fetch(_INDEXES_SQL)
    for index in indexes:
        await conn.execute(f'DROP INDEX "{index["name"]}"')
    # Sorting a million keys per index wants more than the 64 MB default.
    await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
    return [index["definition"] for index in indexes]


async def _staged(conn: Connection, tenant: str, chunks: Chunks) -> LoadResult:
    await conn.execute(_STAGE_SQL)
    await conn.copy_to_table(
        "import_rows",
        source=chunks.numbered("\n"),
        columns=["line", *_VALUE_COLUMNS.split(", ")],
        format="text",
    )
    await conn.execute("ANALYZE import_rows")
    revision = await bump_head(conn, tenant)
    duplicate = await conn.fetchrow(_DUPLICATE_SQL)
    if duplicate is not None:
        raise InvalidArgument(
            f"lines {duplicate['first']} and {duplicate['second']} name the same relationship",
            field=f"line {duplicate['second']}",
        )
    replaced = await conn.execute(_STAMP_SQL, tenant, revision)
    inserted = await conn.execute(_INSERT_SQL, tenant, revision)
    return LoadResult(revision, int(inserted.rsplit(" ", 1)[-1]), int(replaced.rsplit(" ", 1)[-1]))
