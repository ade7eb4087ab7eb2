"""A real server on a loopback port, over a fresh PostgreSQL database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from authz_service.app import App
from authz_service.config import Settings
from tests.pg import FreshDatabase


def server_settings(dsn: str, tmp_path: Path, **overrides: object) -> Settings:
    base = Settings(
        listen="127.0.0.1:0",
        database_url=dsn,
        data_dir=tmp_path,
        migrate_on_start=False,
        log_mode="off",
        log_dir=tmp_path / "decisions",
        revision_poll_ms=100,
        shutdown_grace_s=1.0,
        auth=False,  # tests/api/test_auth.py turns it on
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    async with FreshDatabase() as dsn:
        yield dsn


TEST_TENANTS = ("acme", "globex")
"""The tenants most tests write into, registered as an operator would before use (data
calls to an unknown tenant are NOT_FOUND)."""


async def start_app(settings: Settings, tenants: tuple[str, ...] = TEST_TENANTS) -> App:
    """A running App with `tenants` registered in its store (no admin records: as if
    migration 0005 had found them)."""
    running = await App.start(settings)
    for name in tenants:
        if await running.store.tenants.get(name) is None:  # a restart finds them
            await running.store.tenants.create(name)
    return running


@pytest.fixture
async def app(pg_dsn: str, tmp_path: Path) -> AsyncIterator[App]:
    running = await start_app(server_settings(pg_dsn, tmp_path))
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


@pytest.fixture
async def channel(app: App) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        yield ch
