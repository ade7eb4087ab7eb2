"""Reads: relationships at a revision, Watch changes, heads, retention checks, schemas.

Every reader is one statement, so one round trip on a pooled connection; a read whose
connection died during an outage is retried once on a fresh one.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from authz_service.errors import FailedPrecondition, echo
from authz_service.model import (
    Relationship,
    RelationshipFilter,
    RelationshipKind,
    Revision,
    UpdateOp,
)
from authz_service.store.postgres.db import Database
from authz_service.store.postgres.sql import (
    KEY_COLUMNS,
    REL_COLUMNS,
    Params,
    filter_clauses,
    relationship_from_row,
    sort_values,
)
from authz_service.store.protocol import Change, SchemaRecord

__all__ = [
    "changes",
    "changes_page",
    "check_revision",
    "head_revision",
    "heads",
    "read",
    "read_if_replayed",
    "read_schema",
    "read_statement",
    "relationship_kinds",
    "role_grants",
]

LIVE_AT = "tenant = $1 AND created_rev <= $2 AND (deleted_rev IS NULL OR deleted_rev > $2)"
"""A row is visible at revision R ($2) if created at or before R and not deleted by R."""


def read_statement(
    tenant: str,
    revision: Revision,
    flt: RelationshipFilter,
    *,
    limit: int | None = None,
    after: Relationship | None = None,
) -> tuple[str, list[Any]]:
    """The exact statement `read` runs (exposed so tests can EXPLAIN it)."""
    if one_branch_per_subject(flt, limit, after):
        return _union_statement(tenant, revision, flt)
    params = Params([tenant, revision])
    clauses = [LIVE_AT, *filter_clauses(flt, params)]
    if after is not None:
        cursor = ", ".join(params.add(v) for v in sort_values(after))
        clauses.append(f"({KEY_COLUMNS}) > ({cursor})")
    sql = (
        f"SELECT {REL_COLUMNS} FROM relationships WHERE {' AND '.join(clauses)} "
        f"ORDER BY {KEY_COLUMNS}"
    )
    if limit is not None:
        sql += f" LIMIT {params.add(limit)}"
    return sql, params.values


_MAX_BRANCHES = 8


def one_branch_per_subject(
    flt: RelationshipFilter, limit: int | None, after: Relationship | None
) -> bool:
    """Whether `read` asks for each subject id separately (UNION ALL) and sorts itself.

    `subject_id = ANY($n)` with a pinned resource (the check read
    `group:g#member@user:{u,*}`) is applied by PostgreSQL 15 as a filter over every row
    of the resource prefix whenever it plans generically, as it does for prepared
    statements (it walked all 10,000 members of g); one equality per branch is an index
    condition in every plan. Unpaged reads only: their rows are few, and are sorted in
    Python (the columns are COLLATE "C", byte order, which for UTF-8 is code point
    order: Python's string order)."""
    ids = flt.subject_ids
    return (
        ids is not None and 1 < len(set(ids)) <= _MAX_BRANCHES and limit is None and after is None
    )


def _union_statement(
    tenant: str, revision: Revision, flt: RelationshipFilter
) -> tuple[str, list[Any]]:
    params = Params([tenant, revision])
    base = " AND ".join([LIVE_AT, *filter_clauses(replace(flt, subject_ids=None), params)])
    branches = [
        f"(SELECT {REL_COLUMNS} FROM relationships WHERE {base} "
        f"AND subject_id = {params.add(subject_id)})"
        for subject_id in dict.fromkeys(flt.subject_ids or ())
    ]
    return " UNION ALL ".join(branches), params.values


async def read(
    db: Database,
    tenant: str,
    revision: Revision,
    flt: RelationshipFilter,
    *,
    limit: int | None = None,
    after: Relationship | None = None,
) -> list[Relationship]:
    sql, args = read_statement(tenant, revision, flt, limit=limit, after=after)
    rows = await db.fetch(sql, *args)
    found = [relationship_from_row(row) for row in rows]
    if one_branch_per_subject(flt, limit, after):
        found.sort(key=sort_values)
    return found


REPLAYED = "coalesce((SELECT head FROM tenants WHERE tenant = $1), 0) >= $2"
"""Whether this server holds revision R ($2) of the tenant. Every snapshot holds a prefix
of a tenant's revisions (docs/storage.md, "Why revisions are commit-ordered"), a hot
standby's included: one that sees head >= R sees every row of 1..R."""


async def read_if_replayed(
    db: Database,
    tenant: str,
    revision: Revision,
    flt: RelationshipFilter,
    *,
    limit: int | None = None,
    after: Relationship | None = None,
) -> list[Relationship] | None:
    """`read` on a hot standby, or None if it has not replayed `revision` yet.

    The check and the read are one statement, so one snapshot: the answer can never mix
    a replayed head with rows replayed later or earlier. A single guard row joins the
    read (LEFT JOIN: one row of NULLs when the read found nothing, or when the guard
    failed and the read was not run)."""
    sql, args = read_statement(tenant, revision, flt, limit=limit, after=after)
    guarded = (
        f"SELECT g.replayed, r.* FROM (SELECT {REPLAYED} AS replayed) AS g "
        f"LEFT JOIN LATERAL ({sql}) AS r ON g.replayed"
    )
    rows = await db.fetch(guarded, *args)
    if not rows[0]["replayed"]:
        return None
    found = [relationship_from_row(row) for row in rows if row["resource_type"] is not None]
    found.sort(key=sort_values)  # SQL keeps no order through the join
    return found


# Changes of revision R: rows created at R (TOUCH), and rows deleted at R that no row
# created at R replaces (DELETE; a replaced row is part of its TOUCH). `bound` is the
# revision of the `limit`-th change, so a page always ends on a whole revision and a
# caller resuming after the last revision it saw misses nothing.
_NOT_REPLACED = """NOT EXISTS (
       SELECT 1 FROM relationships AS n
        WHERE n.tenant = d.tenant AND n.resource_type = d.resource_type
          AND n.resource_id = d.resource_id AND n.relation = d.relation
          AND n.subject_type = d.subject_type AND n.subject_id = d.subject_id
          AND n.subject_relation = d.subject_relation AND n.created_rev = d.deleted_rev)"""

CHANGES_SQL = f"""
WITH bound AS (
    SELECT max(rev) AS last FROM (
        SELECT rev FROM (
            (SELECT created_rev AS rev FROM relationships
              WHERE tenant = $1 AND created_rev > $2 ORDER BY created_rev LIMIT $3)
            UNION ALL
            (SELECT deleted_rev FROM relationships AS d
              WHERE tenant = $1 AND deleted_rev > $2 AND {_NOT_REPLACED}
              ORDER BY deleted_rev LIMIT $3)
        ) AS candidates ORDER BY rev LIMIT $3
    ) AS first_changes
)
SELECT c.created_rev AS revision, 'touch' AS op, {REL_COLUMNS}
  FROM relationships AS c
 WHERE c.tenant = $1 AND c.created_rev > $2 AND c.created_rev <= (SELECT last FROM bound)
UNION ALL
SELECT d.deleted_rev, 'delete', {REL_COLUMNS}
  FROM relationships AS d
 WHERE d.tenant = $1 AND d.deleted_rev > $2 AND d.deleted_rev <= (SELECT last FROM bound)
   AND {_NOT_REPLACED}
ORDER BY revision, {KEY_COLUMNS}
"""


async def changes(db: Database, tenant: str, after: Revision, *, limit: int = 1000) -> list[Change]:
    if limit <= 0:
        return []
    return [_change(row) for row in await db.fetch(CHANGES_SQL, tenant, after, limit)]


def _change(row: Any) -> Change:
    return Change(
        row["revision"],
        UpdateOp.TOUCH if row["op"] == "touch" else UpdateOp.DELETE,
        relationship_from_row(row),
    )


def _changes_page_sql(past: str) -> str:
    """Changes past a position, `past` its condition on a revision column ({rev}) and
    the key columns. Each side is read in (revision, key) order from the index that
    begins with those columns and stops at the limit, so a page costs its own rows
    however large the revision it falls in (migration 0011). `deleted_rev IS NOT NULL`
    is implied, but the planner proves the deletes' partial index from it only when it
    is written out (not from a row comparison)."""
    return f"""
(SELECT c.created_rev AS revision, 'touch' AS op, {REL_COLUMNS}
   FROM relationships AS c
  WHERE c.tenant = $1 AND {past.format(rev="c.created_rev")}
  ORDER BY c.created_rev, {KEY_COLUMNS} LIMIT $3)
UNION ALL
(SELECT d.deleted_rev, 'delete', {REL_COLUMNS}
   FROM relationships AS d
  WHERE d.tenant = $1 AND d.deleted_rev IS NOT NULL AND {past.format(rev="d.deleted_rev")}
    AND {_NOT_REPLACED}
  ORDER BY d.deleted_rev, {KEY_COLUMNS} LIMIT $3)
ORDER BY revision, {KEY_COLUMNS} LIMIT $3
"""


CHANGES_PAGE_SQL = _changes_page_sql("{rev} > $2")
"""The changes of the revisions after $2."""

CHANGES_WITHIN_SQL = _changes_page_sql(f"({{rev}}, {KEY_COLUMNS}) > ($2, $4, $5, $6, $7, $8, $9)")
"""The changes after the position (revision $2, key $4..$9): the rest of revision $2,
then the revisions after it."""


async def changes_page(
    db: Database,
    tenant: str,
    after: Revision,
    *,
    within: Relationship | None = None,
    limit: int,
) -> list[Change]:
    if limit <= 0:
        return []
    if within is None:
        rows = await db.fetch(CHANGES_PAGE_SQL, tenant, after, limit)
    else:
        rows = await db.fetch(CHANGES_WITHIN_SQL, tenant, after, limit, *sort_values(within))
    return [_change(row) for row in rows]


async def head_revision(db: Database, tenant: str) -> Revision:
    head = await db.fetchval("SELECT head FROM tenants WHERE tenant = $1", tenant)
    return int(head) if head is not None else 0


HEADS_SQL = """
SELECT coalesce((SELECT head FROM tenants WHERE tenant = $1), 0) AS head,
       coalesce((SELECT max(seq) FROM schemas), 0) AS schema_seq
"""


async def heads(db: Database, tenant: str) -> tuple[Revision, int]:
    row = await db.fetchrow(HEADS_SQL, tenant)
    assert row is not None  # a SELECT without FROM always yields one row
    return int(row["head"]), int(row["schema_seq"])


# `expired` is NULL when the successor's revision row was collected, which GC only does
# once that successor committed before the cutoff: too old as well. `$2::bigint`: left to
# itself, `$2 + 1` types the parameter int4, which a revision past 2^31 does not fit.
CHECK_REVISION_SQL = """
SELECT coalesce((SELECT head FROM tenants WHERE tenant = $1), 0) AS head,
       (SELECT committed_at < now() - $3::interval
          FROM revisions WHERE tenant = $1 AND revision = $2::bigint + 1) AS expired
"""
# Revisions are bigint (migration 0001). A token or cursor may name any number: one this
# large is past every head, and is sent clamped so that `$2 + 1` still fits.
_LARGEST_SENT = 2**63 - 2


async def check_revision(
    db: Database, tenant: str, revision: Revision, retention: timedelta
) -> Revision:
    """Revision R is readable while R is the head, or while its successor R+1 (the write
    that ended snapshot R) committed no earlier than now - retention. GC removes exactly
    the rows deleted by revisions committed before that cutoff, so every row visible at
    a readable R is still there."""
    if revision < 0:
        raise FailedPrecondition(
            f"revision `{echo(revision)}` is unknown in tenant `{echo(tenant)}`"
        )
    sent = min(revision, _LARGEST_SENT)
    row = await db.fetchrow(CHECK_REVISION_SQL, tenant, sent, retention)
    assert row is not None  # a SELECT without FROM always yields one row
    if revision > row["head"]:
        raise FailedPrecondition(
            f"revision `{echo(revision)}` is unknown in tenant `{echo(tenant)}`"
        )
    if revision < row["head"] and row["expired"] is not False:
        raise FailedPrecondition(
            f"revision `{echo(revision)}` of tenant `{echo(tenant)}` is older than the retention window"
        )
    head: Revision = row["head"]
    return head


async def read_schema(db: Database, version: str | None) -> SchemaRecord | None:
    args: tuple[str, ...] = ()
    if version is None:
        sql = "SELECT version, text, created_at, seq FROM schemas ORDER BY seq DESC LIMIT 1"
    else:
        sql = (
            "SELECT version, text, created_at, seq FROM schemas WHERE version = $1 "
            "ORDER BY seq LIMIT 1"
        )
        args = (version,)
    row = await db.fetchrow(sql, *args)
    if row is None:
        return None
    return SchemaRecord(row["version"], row["text"], row["created_at"], row["seq"])


async def relationship_kinds(db: Database) -> set[RelationshipKind]:
    # A scan of the live rows: WriteSchema is rare and must see every tenant.
    rows = await db.fetch(
        "SELECT DISTINCT resource_type, relation, subject_type, subject_relation, "
        "subject_id = '*', caveat_name, expires_at IS NOT NULL "
        "FROM relationships WHERE deleted_rev IS NULL"
    )
    return {RelationshipKind(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows}


ROLE_GRANTS_SQL = (
    "SELECT DISTINCT ON (subject_id) subject_id, tenant, resource_id FROM relationships "
    "WHERE resource_type = '__role' AND relation = 'grants' AND deleted_rev IS NULL "
    "ORDER BY subject_id, tenant, resource_id"
)
"""The grants of custom roles (`__role:R#grants@__perm:<type>.<name>`, see
tenancy/encoding.py) in every tenant, with the first (tenant, role) that grants each;
read from the partial index `relationships_role_grants` (migration 0010)."""


async def role_grants(db: Database) -> dict[str, tuple[str, str]]:
    rows = await db.fetch(ROLE_GRANTS_SQL)
    return {r[0]: (r[1], r[2]) for r in rows}
