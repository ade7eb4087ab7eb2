"""AUTHZ_LOG_POSTGRES: the decision log mirrored into the service database."""

from __future__ import annotations

from dataclasses import replace
from importlib import resources
from pathlib import Path

import asyncpg
import pytest

from authz_service.api.gen.authz.v1 import permissions_pb2
from authz_service.app import App
from authz_service.decisionlog import MIGRATION_SQL, DecisionLogConfig, PostgresSink
from authz_service.decisionlog.layout import list_segments
from authz_service.errors import FailedPrecondition
from tests.api.helpers import Api, obj, subj
from tests.decisionlog.helpers import wait_until, write_records

from .helpers import (
    QUESTIONS,
    SCHEMA,
    LogSetup,
    channel_to,
    check,
    make_decisions,
    running,
    setup_world,
)


def _file_lines(log_dir: Path) -> set[str]:
    return {
        line
        for stream in log_dir.iterdir()
        if stream.is_dir()
        for _, segment in list_segments(stream)
        for line in segment.read_text().splitlines()
    }


async def _mirrored(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return {row["line"] for row in await conn.fetch("SELECT line FROM decision_log")}
    finally:
        await conn.close()


def test_the_migration_creates_the_mirror_table() -> None:
    folder = resources.files("authz_service.store.postgres") / "migrations"
    text = (folder / "0003_decision_log.sql").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("-- "))
    assert body.strip() == "\n".join(
        line for line in MIGRATION_SQL.strip().splitlines() if not line.startswith("-- ")
    )


async def test_records_reach_the_database(log_setup: LogSetup) -> None:
    async with running(log_setup, log_postgres=True) as app, channel_to(app) as channel:
        api = Api(channel)
        await api.write_schema(SCHEMA)
        await setup_world(api, "acme")
        await make_decisions(channel, "acme")

        async def caught_up() -> bool:
            return await _mirrored(log_setup.dsn) == _file_lines(log_setup.log_dir)

        await wait_until(caught_up, within=10)
    assert len(await _mirrored(log_setup.dsn)) == 1 + 1 + 14  # schema, write, decisions


async def test_a_nul_in_a_checks_context_or_reason_does_not_block_the_mirror(
    log_setup: LogSetup,
) -> None:
    """Check stores nothing, so it takes a NUL (api/nul.py); its record's line escapes it,
    but `jsonb` cannot hold U+0000, and such a record once failed every insert and every
    catch-up after it, and then the next start."""
    nul = "a\x00b"
    async with running(log_setup, log_postgres=True) as app, channel_to(app) as channel:
        api = Api(channel)
        await api.write_schema(SCHEMA)
        await setup_world(api, "acme")
        await check(api, "acme", QUESTIONS[0], context={"place": nul, nul: [nul]})
        request = permissions_pb2.CheckRequest(
            tenant="acme",
            resource=obj("document:spec"),
            permission="view",
            subject=subj("user:alice"),
            actor=subj("user:sam"),
            reason=nul,
        )
        await api.permissions.Check(request)
        await make_decisions(channel, "acme")
    # Stopped: the mirror was fed every record, and has finished.
    lines = _file_lines(log_setup.log_dir)
    assert sum("a\\u0000b" in line for line in lines) == 2
    assert await _mirrored(log_setup.dsn) == lines
    conn = await asyncpg.connect(log_setup.dsn)
    try:
        query = "SELECT record->'context'->>'place' FROM decision_log WHERE line LIKE '%place%'"
        assert await conn.fetchval(query) == "a\ufffdb"  # the line keeps the NUL
    finally:
        await conn.close()
    async with running(log_setup, log_postgres=True):  # catches up before serving
        pass


async def test_a_mirror_turned_on_later_catches_up_before_serving(log_setup: LogSetup) -> None:
    async with running(log_setup) as app, channel_to(app) as channel:
        api = Api(channel)
        await api.write_schema(SCHEMA)
        await setup_world(api, "acme")
        await make_decisions(channel, "acme")
    assert await _mirrored(log_setup.dsn) == set()
    async with running(log_setup, log_postgres=True):
        assert await _mirrored(log_setup.dsn) == _file_lines(log_setup.log_dir)


async def test_the_mirror_needs_postgres(log_setup: LogSetup) -> None:
    settings = replace(log_setup.settings, database_url="memory://", log_postgres=True)
    with pytest.raises(FailedPrecondition, match="AUTHZ_LOG_POSTGRES needs a PostgreSQL"):
        await App.start(settings)


async def test_worker_streams_of_one_tenant_stay_apart(pg_dsn: str, tmp_path: Path) -> None:
    roots = [tmp_path / f"worker-{n}" for n in range(2)]
    for root in roots:  # each worker: its own chain of tenant acme, seq 0..4
        await write_records(DecisionLogConfig(root=root), 5)
    async with asyncpg.create_pool(pg_dsn, min_size=1, max_size=2) as pool:
        sinks = [PostgresSink(pool, source=root.name) for root in roots]
        assert [await s.catch_up(r) for s, r in zip(sinks, roots, strict=True)] == [5, 5]
        assert [await s.catch_up(r) for s, r in zip(sinks, roots, strict=True)] == [0, 0]
        rows = await pool.fetch(
            "SELECT source, count(*) AS n, max(seq) AS last FROM decision_log "
            "WHERE tenant = 'acme' GROUP BY source ORDER BY source"
        )
    assert [(r["source"], r["n"], r["last"]) for r in rows] == [
        ("worker-0", 5, 4),
        ("worker-1", 5, 4),
    ]
