"""A decision an evaluation limit decided replays the same only under the same limits,
which a record does not keep: `authz audit replay` takes them from the environment, as
the server does, and a difference a limit error is part of says so, naming the limits
the replay ran with (docs/decision-log.md, "Replay")."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tests.api.helpers import Api

from .helpers import SCHEMA, LogSetup, channel_to, check, run_cli, running

DEEP = ("document:deep", "view", "user:deep")  # eight groups deep


@pytest.fixture
async def deep_denied(log_setup: LogSetup, monkeypatch: pytest.MonkeyPatch) -> LogSetup:
    """A check a server with AUTHZ_MAX_DEPTH=4 refused (logged as DENIED, LimitExceeded)."""
    monkeypatch.delenv("AUTHZ_DATABASE_URL", raising=False)
    monkeypatch.delenv("AUTHZ_MAX_DEPTH", raising=False)
    nested = [f"group:d{i + 1}#member@group:d{i}#member" for i in range(8)]
    async with (
        asyncio.timeout(120),
        running(log_setup, max_depth=4) as app,
        channel_to(app) as channel,
    ):
        api = Api(channel)
        await api.write_schema(SCHEMA)
        await api.touch(
            "acme", "group:d0#member@user:deep", *nested, "document:deep#viewer@group:d8#member"
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await check(api, "acme", DEEP)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    return log_setup


async def _replay(setup: LogSetup) -> tuple[int, list[str]]:
    status, out, _ = await asyncio.to_thread(
        run_cli, "audit", "replay", "--log-dir", str(setup.log_dir), "--database-url", setup.dsn
    )
    return status, out.splitlines()


async def test_a_limit_error_replays_under_the_servers_limits(
    deep_denied: LogSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, lines = await _replay(deep_denied)  # the default depth, 50: deep enough
    assert status == 1
    assert lines[-1] == "1 replayed, 1 differ, 0 could not be replayed"
    assert lines[0].startswith("DIFFERS")
    assert "recorded: DENIED, error `LimitExceeded`: max depth `4` exceeded" in lines[1]
    assert lines[2].startswith("    replayed: ALLOWED")
    assert lines[3] == (
        "    note: an evaluation limit decided one of these answers, and a record does not "
        "keep the server's limits; this replay ran with AUTHZ_MAX_DEPTH=50, "
        "AUTHZ_MAX_FANOUT=10000, AUTHZ_MAX_SUBPROBLEMS=100000, AUTHZ_MAX_CAVEAT_COST=1000000: "
        "set the server's"
    )

    monkeypatch.setenv("AUTHZ_MAX_DEPTH", "4")  # the server's setting
    status, lines = await _replay(deep_denied)
    assert (status, lines) == (0, ["1 replayed, 0 differ, 0 could not be replayed"])
