"""Fixtures for the audit tools: a fresh database, a signed, durable log setup, and a
log written by a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from authz_service.config import Settings
from authz_service.decisionlog import generate_keypair
from tests.api.helpers import Api
from tests.pg import FreshDatabase

from .helpers import SCHEMA, LogSetup, channel_to, make_decisions, running, setup_world


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    async with FreshDatabase("audit_test") as dsn:
        yield dsn


@pytest.fixture
def log_setup(pg_dsn: str, tmp_path: Path) -> LogSetup:
    private, public = generate_keypair(tmp_path / "keys")
    settings = Settings(
        listen="127.0.0.1:0",
        database_url=pg_dsn,
        data_dir=tmp_path,
        migrate_on_start=False,
        log_mode="durable",
        log_dir=tmp_path / "decisions",
        log_signing_key=str(private),
        revision_poll_ms=100,
        shutdown_grace_s=1.0,
        auth=False,
    )
    return LogSetup(pg_dsn, settings.log_dir, private, public, settings)


@pytest.fixture
async def real_log(log_setup: LogSetup) -> LogSetup:
    """Schema, relationships and decisions of tenants `acme` and `globex`, server stopped."""
    async with asyncio.timeout(120), running(log_setup) as app, channel_to(app) as channel:
        api = Api(channel)
        await api.write_schema(SCHEMA)
        for tenant in ("acme", "globex"):
            await setup_world(api, tenant)
            await make_decisions(channel, tenant)
    return log_setup  # stopped: everything flushed and checkpointed
