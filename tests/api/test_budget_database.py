"""A database behind a network that silently drops packets (issue 10): a call without a
client deadline still ends within the server's default deadline, with an error and
never ALLOWED. Once a call hung about 22 s with a 5 s default deadline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from authz_service.app import App
from tests.api.blackhole import Blackhole
from tests.api.conftest import server_settings
from tests.api.helpers import Api

DEADLINE_MS = 1000
# A hang guard, not a speed assertion: the call must not outlive its deadline by much.
HANG_GUARD_S = 3 * DEADLINE_MS / 1000


@pytest.mark.parametrize(
    "consistency",
    [{}, {"full": True}],
    ids=["minimize_latency", "fully_consistent"],
)
@pytest.mark.timeout(120)
async def test_blackholed_database_gives_an_error_within_the_deadline(
    pg_dsn: str, tmp_path: Path, consistency: dict[str, Any]
) -> None:
    async with Blackhole("127.0.0.1", 5432) as hole:
        dsn = pg_dsn.replace("127.0.0.1:5432", f"127.0.0.1:{hole.port}")
        assert dsn != pg_dsn
        app = await App.start(
            server_settings(dsn, tmp_path, default_deadline_ms=DEADLINE_MS, max_staleness_ms=100)
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                api = Api(channel)
                await api.write_schema()
                await api.touch("acme", "document:plan#viewer@user:alice")
                hole.blackhole()
                started = time.monotonic()
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await api.check("acme", "document:plan", "view", "user:bob", **consistency)
                elapsed = time.monotonic() - started
                assert caught.value.code() in (
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.UNAVAILABLE,
                )
                assert elapsed < HANG_GUARD_S, f"the call hung {elapsed:.1f}s"
        finally:
            await app.stop(grace=1.0)
