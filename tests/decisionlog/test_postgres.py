"""The PostgreSQL mirror against a real server, in a throwaway database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import pytest

from authz_service.decisionlog import (
    MIGRATION_SQL,
    DecisionLogConfig,
    DecisionLogWriter,
    PostgresSink,
    RecordFilter,
)
from tests.pg import FreshDatabase

from .helpers import make_record, read_all_lines, write_records


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    # The shared helper creates a randomly named database and drops it at exit; the
    # decision log table is not part of the store's migrations, so apply its own DDL.
    async with (
        FreshDatabase("decisionlog_test", migrate=False) as dsn,
        asyncpg.create_pool(dsn, min_size=1, max_size=4) as created,
    ):
        await created.execute(MIGRATION_SQL)
        yield created


async def test_mirror_receives_every_written_entry(
    config: DecisionLogConfig, pool: asyncpg.Pool
) -> None:
    months = [datetime(2024, 1, 31, 23, 59, tzinfo=UTC), datetime(2024, 2, 1, 0, 1, tzinfo=UTC)]
    records = [make_record(i, ("acme", "globex")[i % 2], time=months[i % 2]) for i in range(20)]
    sink = PostgresSink(pool)
    async with DecisionLogWriter(config, mirror=sink) as writer:
        for record in records:
            await writer.append(record)
    assert writer.stats().mirror_errors == 0

    rows = await pool.fetch("SELECT tenant, seq, line FROM decision_log ORDER BY tenant, seq")
    assert [r["line"].encode() for r in rows if r["tenant"] == "acme"] == read_all_lines(config)
    partitions = await pool.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'decision_log'::regclass ORDER BY 1"
    )
    assert [p["relname"] for p in partitions] == ["decision_log_y2024m01", "decision_log_y2024m02"]

    found = await sink.query(RecordFilter(tenant="globex", since=months[1]))
    assert [e.seq for e in found] == list(range(10))
    one = await sink.query(RecordFilter(decision_id=records[3].decision_id))
    assert [e.record for e in one] == [records[3]]


async def test_catch_up_copies_what_the_mirror_missed(
    config: DecisionLogConfig, pool: asyncpg.Pool
) -> None:
    config = replace(config, max_segment_bytes=4000)  # several segments to skip over
    await write_records(config, 40, tenants=("acme", "globex"))
    sink = PostgresSink(pool)
    assert await sink.catch_up(config.root) == 40
    assert await sink.catch_up(config.root) == 0  # idempotent
    await write_records(config, 4)  # more records arrive while the mirror is away
    assert await sink.catch_up(config.root) == 4
    counts = await pool.fetch(
        "SELECT tenant, count(*) AS n FROM decision_log GROUP BY 1 ORDER BY 1"
    )
    assert [(r["tenant"], r["n"]) for r in counts] == [("acme", 24), ("globex", 20)]


async def test_mirror_outage_does_not_stop_the_log(
    config: DecisionLogConfig, pool: asyncpg.Pool
) -> None:
    await pool.execute("DROP TABLE decision_log")  # the mirror is broken from the start
    async with DecisionLogWriter(config, mirror=PostgresSink(pool)) as writer:
        for i in range(5):
            await writer.append(make_record(i))
    assert writer.stats().written == 5
    assert writer.stats().mirror_errors >= 1

    await pool.execute(MIGRATION_SQL)  # repaired: the files bring it up to date
    assert await PostgresSink(pool).catch_up(config.root) == 5
