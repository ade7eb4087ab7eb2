"""The hot queries are index scans on a seeded database, with the planner left alone
(no enable_seqscan games): both the plan for the actual values (custom) and the plan a
prepared statement settles on after a few runs (generic) are checked."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from authz_service.model import (
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    UpdateOp,
    parse_relationship,
)
from authz_service.store.postgres import PostgresStore, connect
from authz_service.store.postgres.importer import import_relationships
from authz_service.store.postgres.reads import (
    CHANGES_PAGE_SQL,
    CHANGES_SQL,
    CHANGES_WITHIN_SQL,
    CHECK_REVISION_SQL,
    ROLE_GRANTS_SQL,
    read_statement,
)
from authz_service.store.postgres.sql import sort_values
from authz_service.store.postgres.writes import STAMP_SQL, bump_head
from tests.pg import FreshDatabase, run_aside

TENANT = "acme"
BIG_GROUP = 5_000


def seed_rows(count: int) -> list[tuple[int, Relationship]]:
    rng = random.Random(7)
    rows = []
    for i in range(count):
        doc = f"d{i // 4}"
        if i % 5 == 0:
            subject = f"group:g{rng.randrange(100)}#member"
        else:
            subject = f"user:u{rng.randrange(1000)}_{i}"
        relation = ("viewer", "editor", "owner", "parent")[i % 4]
        if relation == "parent":
            subject = f"folder:f{i % 500}"
        rows.append((i + 1, parse_relationship(f"doc:{doc}#{relation}@{subject}")))
    return rows


async def seed(dsn: str) -> None:
    """60k relationships in one tenant plus history, 2k other tenants, then ANALYZE."""
    store = await connect(dsn, min_size=1, max_size=2)
    try:
        rows = seed_rows(60_000)
        # one big group, as a tenant's "everyone" group is
        rows += [
            (len(rows) + i + 1, parse_relationship(f"group:big#member@user:m{i}"))
            for i in range(BIG_GROUP)
        ]
        await import_relationships(store.db, TENANT, rows)
        for i in range(200):  # recent small writes and deletes, as Watch sees them
            rel = parse_relationship(f"doc:d{i}#viewer@user:late{i}")
            await store.write(TENANT, [RelationshipUpdate(UpdateOp.TOUCH, rel)])
            await store.delete(TENANT, RelationshipFilter("doc", (f"d{i}",), "editor"))
        await store.pool.execute(
            "INSERT INTO tenants SELECT 'tenant' || g, 10 FROM generate_series(1, 2000) g;"
            "INSERT INTO revisions SELECT 'tenant' || g, r, now() "
            "  FROM generate_series(1, 2000) g, generate_series(1, 10) r;"
            "ANALYZE"
        )
    finally:
        await store.close()


@pytest.fixture(scope="module")
def seeded() -> Iterator[str]:
    database = FreshDatabase()
    dsn = run_aside(database.__aenter__())
    try:
        run_aside(seed(dsn))
        yield dsn
    finally:
        run_aside(database.__aexit__(None, None, None))


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += nodes(child)
    return found


async def plans(dsn: str, sql: str, args: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """{"custom": nodes, "generic": nodes} for `sql` with `args`."""
    conn = await asyncpg.connect(dsn)
    try:
        custom = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))
        await conn.execute(f"PREPARE hot AS {sql}")
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        literals = ", ".join(_literal(a) for a in args)
        execute = f"EXECUTE hot({literals})" if args else "EXECUTE hot"
        generic = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {execute}"))
    finally:
        await conn.close()
    return {"custom": nodes(custom[0]["Plan"]), "generic": nodes(generic[0]["Plan"])}


def _literal(value: Any) -> str:
    if isinstance(value, timedelta):
        return f"'{value.total_seconds()} seconds'::interval"
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(_literal(v) for v in value) + "]::text[]"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def assert_index_only(found: dict[str, list[dict[str, Any]]], *indexes: str) -> None:
    for kind, plan_nodes in found.items():
        types = [n["Node Type"] for n in plan_nodes]
        assert "Seq Scan" not in types, (kind, types)
        used = {n.get("Index Name") for n in plan_nodes} - {None}
        assert used, (kind, types)
        assert used <= set(indexes), (kind, used)


HEAD = 401  # 1 import + 200 writes + 200 deletes


async def test_check_reads_use_the_forward_index(seeded: str) -> None:
    sql, args = read_statement(TENANT, HEAD, RelationshipFilter("doc", ("d42",), "viewer"))
    found = await plans(seeded, sql, args)
    assert_index_only(found, "relationships_forward")
    assert all("Sort" not in [n["Node Type"] for n in p] for p in found.values())


async def test_check_of_one_subject_uses_an_index(seeded: str) -> None:
    flt = RelationshipFilter("doc", ("d42",), "viewer", "group", ("g1",), "member")
    sql, args = read_statement(TENANT, HEAD, flt)
    assert_index_only(
        await plans(seeded, sql, args), "relationships_forward", "relationships_reverse"
    )


async def test_membership_of_a_user_or_wildcard_is_an_index_condition(seeded: str) -> None:
    # The check read `group:big#member@user:{u,*}`: with ORDER BY, PostgreSQL 15 applied
    # the array as a filter over every member of the group (fails on 838c60d).
    flt = RelationshipFilter("group", ("big",), "member", "user", ("m42", "*"), "")
    sql, args = read_statement(TENANT, HEAD, flt)
    found = await plans(seeded, sql, args)
    assert_index_only(found, "relationships_forward", "relationships_reverse")
    for kind, plan_nodes in found.items():
        scans = [n for n in plan_nodes if n.get("Index Name")]
        assert all("subject_id" in n.get("Index Cond", "") for n in scans), (kind, scans)
        assert all("subject_id" not in n.get("Filter", "") for n in scans), (kind, scans)


async def test_the_membership_read_is_sorted_and_exact(seeded: str) -> None:
    store: PostgresStore = await connect(seeded, min_size=1, max_size=1)
    try:
        flt = RelationshipFilter("group", ("big",), "member", "user", ("m7", "*", "m10"), "")
        rows = await store.read(TENANT, HEAD, flt)
        assert [str(r) for r in rows] == [
            "group:big#member@user:m10",
            "group:big#member@user:m7",
        ]
    finally:
        await store.close()


async def test_reverse_lookups_use_the_reverse_index(seeded: str) -> None:
    flt = RelationshipFilter("doc", None, "viewer", "group", ("g7",), "member")
    sql, args = read_statement(TENANT, HEAD, flt)
    assert_index_only(await plans(seeded, sql, args), "relationships_reverse")


async def test_pages_of_one_type_use_the_forward_index(seeded: str) -> None:
    after = parse_relationship("doc:d100#viewer@user:u1_1")
    sql, args = read_statement(TENANT, HEAD, RelationshipFilter("doc"), limit=100, after=after)
    assert_index_only(await plans(seeded, sql, args), "relationships_forward")


async def test_watch_uses_the_revision_indexes(seeded: str) -> None:
    found = await plans(seeded, CHANGES_SQL, [TENANT, HEAD - 20, 1000])
    assert_index_only(
        found,
        "relationships_created_rev",
        "relationships_deleted_rev",
        "relationships_forward",
        "relationships_reverse",
        "relationships_live_identity",
    )


WATCH_INDEXES = (
    "relationships_created_rev",
    "relationships_deleted_rev",
    "relationships_forward",
    "relationships_reverse",
    "relationships_live_identity",
)


async def test_watch_pages_use_the_revision_indexes(seeded: str) -> None:
    inside = parse_relationship("doc:d7000#viewer@user:u1_28001")  # 65k rows at revision 1
    for sql, args in (
        (CHANGES_PAGE_SQL, [TENANT, HEAD - 20, 1001]),
        (CHANGES_WITHIN_SQL, [TENANT, 1, 1001, *sort_values(inside)]),
    ):
        assert_index_only(await plans(seeded, sql, args), *WATCH_INDEXES)


async def test_a_page_inside_a_large_revision_reads_only_its_own_rows(seeded: str) -> None:
    """Revision 1 holds the 65,000 imported rows. On (tenant, created_rev) alone every
    page inside it read all of them and sorted them (before migration 0011): a replay
    cost the square of the revision's size."""
    inside = parse_relationship("doc:d7000#viewer@user:u1_28001")
    conn = await asyncpg.connect(seeded)
    try:
        analyzed = await conn.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {CHANGES_WITHIN_SQL}",
            TENANT,
            1,
            1001,
            *sort_values(inside),
        )
    finally:
        await conn.close()
    scans = [n for n in nodes(json.loads(analyzed)[0]["Plan"]) if "Scan" in n["Node Type"]]
    read = {
        (n["Node Type"], n.get("Index Name")): n["Actual Loops"]
        * (n["Actual Rows"] + n.get("Rows Removed by Filter", 0))
        for n in scans
    }
    assert max(read.values()) <= 1001 * 2, read


async def test_revision_checks_use_primary_keys(seeded: str) -> None:
    found = await plans(seeded, CHECK_REVISION_SQL, ["tenant7", 5, timedelta(hours=24)])
    assert_index_only(found, "tenants_pkey", "revisions_pkey")


async def test_role_grants_for_write_schema_use_their_partial_index(seeded: str) -> None:
    """WriteSchema reads every tenant's role grants under the schema lock; the other
    indexes lead with the tenant, so this read scanned the whole table before 0010."""
    assert_index_only(await plans(seeded, ROLE_GRANTS_SQL, []), "relationships_role_grants")


async def test_the_seeded_store_reads_correctly(seeded: str) -> None:
    store: PostgresStore = await connect(seeded, min_size=1, max_size=1)
    try:
        rows = await store.read(TENANT, HEAD, RelationshipFilter("doc", ("d42",)))
        assert [r.relation for r in rows] == ["owner", "parent", "viewer", "viewer"]
        assert await store.head_revision(TENANT) == HEAD
    finally:
        await store.close()


async def test_a_write_plans_its_batch_for_its_own_values(seeded: str) -> None:
    """A write's stamp (UPDATE ... FROM unnest of its keys) as a prepared statement
    settles on after five runs: the generic plan, which cannot know the batch's size, was
    a sequential scan of the table, and every write past the fifth on a connection took
    2-4 s for 1,000 relationships instead of 30 ms. Inside a write's transaction each
    statement is planned for its own values (`bump_head` sets plan_cache_mode)."""
    keys = [
        ["touch"] * 1000,
        ["doc"] * 1000,
        [f"d{i}" for i in range(1000)],
        ["viewer"] * 1000,
        ["user"] * 1000,
        [f"u{i}" for i in range(1000)],
        [""] * 1000,
    ]
    literals = ", ".join(["'acme'", "999999", *(_literal(k) for k in keys)])
    conn = await asyncpg.connect(seeded)
    try:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await bump_head(conn, TENANT)
            await conn.execute(f"PREPARE stamp AS {STAMP_SQL}")
            for _ in range(6):  # past the five custom plans a prepared statement gets
                await conn.execute(f"EXECUTE stamp({literals})")
            plan = json.loads(
                await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE stamp({literals})")
            )
        finally:
            await transaction.rollback()
    finally:
        await conn.close()
    # Planned for its values, the scan of the keys expects the batch's 1,000 rows.
    [keys_scan] = [n for n in nodes(plan[0]["Plan"]) if n["Node Type"] == "Function Scan"]
    assert keys_scan["Plan Rows"] == 1000, plan
