"""Fixtures for the audit tools: a fresh database and a signed, durable log setup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from authz_service.config import Settings
from authz_service.decisionlog import generate_keypair
from tests.pg import FreshDatabase

from .helpers import LogSetup


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
