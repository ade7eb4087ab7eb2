"""Writes: every write is one READ COMMITTED transaction at one new revision.

The first statement bumps the tenant's head, which row-locks the tenant until commit:
writers of one tenant serialize, each later statement of the transaction sees every
earlier writer's rows, and revisions become visible in order. The same transaction
records the revision's commit time and queues `NOTIFY authz_revisions, '<tenant>:<rev>'`,
which PostgreSQL delivers only if and when the transaction commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from authz_service.errors import AlreadyExists, InvalidArgument, echo
from authz_service.model import (
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    ReplayedRevision,
    Revision,
    UpdateOp,
)
from authz_service.store.idempotency import key_reused, request_digest
from authz_service.store.postgres.db import Database
from authz_service.store.postgres.sql import (
    REL_COLUMNS,
    Params,
    filter_clauses,
    relationship_from_row,
    relationship_values,
    sort_values,
)
from authz_service.store.protocol import Precondition, SchemaRecord, WholeResources
from authz_service.store.registry import TenantState, refused

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[asyncpg.Record] | asyncpg.Connection

__all__ = [
    "CHANNEL",
    "PURGE_CHANNEL",
    "apply",
    "apply_updates",
    "bump_head",
    "delete",
    "write",
    "write_schema",
]

CHANNEL = "authz_revisions"
# `<tenant>:<head>` when a tenant is purged, so that every process forgets what it pinned
# or found of the tenant (its old revisions must never answer for it again).
PURGE_CHANNEL = "authz_purges"

# Only an active tenant's head moves (a suspended or deleted one yields no row); the
# registry's own state changes bump with BUMP_ANY_SQL. The bump, first in every write
# transaction, also has the rest of the transaction planned for its own values: after
# five runs a prepared statement may settle on a generic plan, and the generic plan of a
# batch (UPDATE ... FROM unnest of its keys) cannot know the batch's size; it scanned
# the whole table, 2-4 s for 1,000 relationships instead of 30 ms. Planning a write's
# few statements costs little beside the write.
_BUMP = """
WITH bumped AS (
    INSERT INTO tenants AS t (tenant, head) VALUES ($1, 1)
    ON CONFLICT (tenant) DO UPDATE SET head = t.head + 1 {where}
    RETURNING head
), logged AS (
    INSERT INTO revisions (tenant, revision, committed_at)
    SELECT $1, head, clock_timestamp() FROM bumped
)
SELECT head, pg_notify('{channel}', $1 || ':' || head),
       set_config('plan_cache_mode', 'force_custom_plan', true)
  FROM bumped
"""
BUMP_SQL = _BUMP.format(where="WHERE t.state = 'active'", channel=CHANNEL)
BUMP_ANY_SQL = _BUMP.format(where="", channel=CHANNEL)


async def bump_head(conn: Connection, tenant: str, *, any_state: bool = False) -> Revision:
    """Take the tenant's write lock and return the revision this transaction writes;
    refused (NotFound / FailedPrecondition) if the tenant is not active, unless
    `any_state` (the registry changing the state itself)."""
    head = await conn.fetchval(BUMP_ANY_SQL if any_state else BUMP_SQL, tenant)
    if head is None:
        state = await conn.fetchval("SELECT state FROM tenants WHERE tenant = $1", tenant)
        raise refused(tenant, TenantState(state))
    return int(head)


class _Replayed(Exception):
    """A retried write: roll back the bump and answer with the first call's revision."""

    def __init__(self, revision: Revision) -> None:
        super().__init__(revision)
        self.revision = revision


_UNNEST_KEYS = (
    "unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])"
    " AS u(op, resource_type, resource_id, relation, subject_type, subject_id, subject_relation)"
)

# Ends the live row of every identity the call names; a CREATE that ends one has found
# an existing relationship, which the caller turns into AlreadyExists (and a rollback).
STAMP_SQL = f"""
UPDATE relationships AS r SET deleted_rev = $2
  FROM {_UNNEST_KEYS}
 WHERE r.tenant = $1 AND r.deleted_rev IS NULL
   AND r.resource_type = u.resource_type AND r.resource_id = u.resource_id
   AND r.relation = u.relation AND r.subject_type = u.subject_type
   AND r.subject_id = u.subject_id AND r.subject_relation = u.subject_relation
RETURNING u.op, r.resource_type, r.resource_id, r.relation, r.subject_type, r.subject_id,
          r.subject_relation
"""

INSERT_SQL = """
INSERT INTO relationships (tenant, resource_type, resource_id, relation, subject_type,
                           subject_id, subject_relation, caveat_name, caveat_context,
                           expires_at, created_rev)
SELECT $1, resource_type, resource_id, relation, subject_type, subject_id, subject_relation,
       caveat_name, caveat_context::jsonb, expires_at, $2
  FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
              $9::text[], $10::text[], $11::timestamptz[])
       AS u(resource_type, resource_id, relation, subject_type, subject_id, subject_relation,
            caveat_name, caveat_context, expires_at)
"""


def _check_distinct(updates: Sequence[RelationshipUpdate]) -> None:
    seen: set[tuple[object, ...]] = set()
    for update in updates:
        key = update.relationship.key
        if key in seen:
            raise InvalidArgument(
                f"relationship `{echo(update.relationship)}` appears twice in one write",
                field="updates",
                value=str(update.relationship),
            )
        seen.add(key)


async def _check_preconditions(
    conn: Connection, tenant: str, preconditions: Sequence[Precondition]
) -> None:
    for index, pre in enumerate(preconditions):
        params = Params([tenant])
        clauses = ["tenant = $1", "deleted_rev IS NULL", *filter_clauses(pre.filter, params)]
        sql = f"SELECT EXISTS (SELECT 1 FROM relationships WHERE {' AND '.join(clauses)})"
        exists = await conn.fetchval(sql, *params.values)
        if exists != pre.must_exist:
            raise pre.failed(index)


async def apply_updates(
    conn: Connection, tenant: str, revision: Revision, updates: Sequence[RelationshipUpdate]
) -> None:
    if not updates:
        return
    by_key = {relationship_values(u.relationship)[:6]: u.relationship for u in updates}
    keys = [[u.op.value for u in updates], *(list(c) for c in zip(*by_key, strict=True))]
    for row in await conn.fetch(STAMP_SQL, tenant, revision, *keys):
        if row["op"] == UpdateOp.CREATE.value:
            raise AlreadyExists(f"relationship `{by_key[tuple(row)[1:]]}` already exists")
    kept = [relationship_values(u.relationship) for u in updates if u.op is not UpdateOp.DELETE]
    if kept:
        await conn.execute(
            INSERT_SQL, tenant, revision, *(list(c) for c in zip(*kept, strict=True))
        )


async def write(
    db: Database,
    tenant: str,
    updates: Sequence[RelationshipUpdate],
    preconditions: Sequence[Precondition],
    idempotency_key: str | None,
) -> Revision:
    _check_distinct(updates)
    digest = request_digest(updates, preconditions)
    try:
        async with db.writing() as conn:
            revision = await bump_head(conn, tenant)
            if idempotency_key is not None:
                first = await conn.fetchrow(
                    "SELECT revision, request_digest FROM idempotency_keys"
                    " WHERE tenant = $1 AND key = $2",
                    tenant,
                    idempotency_key,
                )
                if first is not None:
                    # A key stored without a digest (before migration 0004) cannot
                    # prove the retry is the same request: refused as well.
                    if first["request_digest"] != digest:
                        raise key_reused(idempotency_key)
                    raise _Replayed(int(first["revision"]))
            await _check_preconditions(conn, tenant, preconditions)
            await apply_updates(conn, tenant, revision, updates)
            if idempotency_key is not None:
                await conn.execute(
                    "INSERT INTO idempotency_keys (tenant, key, revision, request_digest)"
                    " VALUES ($1, $2, $3, $4)",
                    tenant,
                    idempotency_key,
                    revision,
                    digest,
                )
    except _Replayed as replay:
        return ReplayedRevision(replay.revision)
    return revision


async def delete(
    db: Database, tenant: str, flt: RelationshipFilter, preconditions: Sequence[Precondition]
) -> tuple[Revision, int]:
    async with db.writing() as conn:
        revision = await bump_head(conn, tenant)
        await _check_preconditions(conn, tenant, preconditions)
        params = Params([tenant, revision])
        clauses = ["tenant = $1", "deleted_rev IS NULL", *filter_clauses(flt, params)]
        status = await conn.execute(
            f"UPDATE relationships SET deleted_rev = $2 WHERE {' AND '.join(clauses)}",
            *params.values,
        )
    return revision, int(status.rsplit(" ", 1)[-1])


async def apply(
    db: Database,
    tenant: str,
    updates: Sequence[RelationshipUpdate],
    deletes: Sequence[RelationshipFilter | WholeResources],
    preconditions: Sequence[Precondition],
) -> tuple[Revision, list[Relationship]]:
    _check_distinct(updates)
    deleted: list[Relationship] = []
    async with db.writing() as conn:
        revision = await bump_head(conn, tenant)
        await _check_preconditions(conn, tenant, preconditions)
        # Whole resources first: a plain filter may end the very row by which one is
        # found, and every filter is to see the rows as they were before the call. (A
        # resource ended by one whole-resource delete is ended whole, so their own order
        # does not matter.)
        for spec in sorted(deletes, key=lambda d: isinstance(d, RelationshipFilter)):
            params = Params([tenant, revision])
            rows = await conn.fetch(
                f"UPDATE relationships SET deleted_rev = $2 WHERE {_doomed(spec, params)} "
                f"RETURNING {REL_COLUMNS}",
                *params.values,
            )
            deleted.extend(relationship_from_row(row) for row in rows)
        # Rows the filters just ended are no longer live, so an update writing one of
        # them again inserts a new row at this revision (Watch reports a TOUCH).
        await apply_updates(conn, tenant, revision, updates)
    deleted.sort(key=sort_values)
    return revision, deleted


def _doomed(spec: RelationshipFilter | WholeResources, params: Params) -> str:
    """The live rows of tenant $1 that `spec` deletes, as a WHERE clause."""
    if isinstance(spec, RelationshipFilter):
        return " AND ".join(["tenant = $1", "deleted_rev IS NULL", *filter_clauses(spec, params)])
    matching = ["m.tenant = $1", "m.deleted_rev IS NULL"]
    matching += filter_clauses(spec.matching, params, "m.")
    return (
        "tenant = $1 AND deleted_rev IS NULL AND (resource_type, resource_id) IN"
        " (SELECT m.resource_type, m.resource_id FROM relationships AS m"
        f" WHERE {' AND '.join(matching)})"
    )


async def write_schema(db: Database, version: str, text: str) -> SchemaRecord:
    # Not retried: a lost connection may hide a committed insert.
    async with db.writing() as conn:
        row = await conn.fetchrow(
            "INSERT INTO schemas (version, text) VALUES ($1, $2) RETURNING created_at, seq",
            version,
            text,
        )
    assert row is not None  # INSERT ... RETURNING yields the inserted row
    return SchemaRecord(version, text, row["created_at"], row["seq"])
