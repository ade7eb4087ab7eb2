"""`authz check` against a real server: `--consistency`, and the API key from AUTHZ_API_KEY."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from authz_service.api.gen.authz.v1 import schema_pb2, schema_pb2_grpc
from authz_service.cli import main
from authz_service.credentials import ALL_TENANTS, Scope, new_key
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import SCHEMA, Api
from tests.pg import FreshDatabase


@pytest.fixture(autouse=True)
def _no_developer_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTHZ_API_KEY", raising=False)


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    async with FreshDatabase() as dsn:
        yield dsn


async def _authz(*argv: str) -> int:
    """`authz ARGV...` in a thread (it runs its own event loop); its exit status."""

    def run() -> int:
        try:
            return main(list(argv))
        except SystemExit as exit_:  # argparse refusing the arguments
            return int(exit_.code or 0)

    return await asyncio.to_thread(run)


async def test_consistency_picks_the_snapshot(
    pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = await start_app(server_settings(pg_dsn, tmp_path))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            api = Api(channel)
            await api.write_schema()
            before = await api.touch("acme", "document:other#viewer@user:bob")
            after = await api.touch("acme", "document:readme#viewer@user:alice")
        question = ("document:readme", "view", "user:alice", "--tenant", "acme")
        server = ("--server", f"127.0.0.1:{app.port}")

        assert (
            await _authz(
                "check", *question, *server, "--consistency", f"at_exact_snapshot:{before}"
            )
            == 1
        )
        assert capsys.readouterr().out.startswith("DENIED")  # the grant came later
        for consistency in (f"at_least_as_fresh:{after}", "fully_consistent"):
            assert await _authz("check", *question, *server, "--consistency", consistency) == 0
            assert capsys.readouterr().out.startswith("ALLOWED")

        assert await _authz("check", *question, *server, "--consistency", "newest") == 2
        err = capsys.readouterr().err
        assert "argument --consistency: `newest` is not one of minimize_latency" in err
    finally:
        await app.stop(grace=1.0)


async def test_the_api_key_comes_from_the_environment(
    pg_dsn: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = await start_app(server_settings(pg_dsn, tmp_path, auth=True))
    try:
        platform, platform_token = new_key(tenant=ALL_TENANTS, scopes=frozenset({Scope.ADMIN}))
        await app.store.keys.create(platform)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            await schema_pb2_grpc.SchemaServiceStub(channel).WriteSchema(
                schema_pb2.WriteSchemaRequest(schema=SCHEMA),
                metadata=(("authorization", f"Bearer {platform_token}"),),
            )
        record, token = new_key(tenant="acme", scopes=frozenset({Scope.CHECK}))
        await app.store.keys.create(record)
        question = ("document:readme", "view", "user:alice", "--tenant", "acme")
        server = ("--server", f"127.0.0.1:{app.port}")

        assert await _authz("check", *question, *server) == 2
        assert "UNAUTHENTICATED" in capsys.readouterr().err

        monkeypatch.setenv("AUTHZ_API_KEY", token)
        assert await _authz("check", *question, *server) == 1
        assert capsys.readouterr().out.startswith("DENIED")
        # A flag still wins over the environment.
        assert await _authz("check", *question, *server, "--api-key", "azk_bad_key") == 2
        assert "UNAUTHENTICATED" in capsys.readouterr().err
    finally:
        await app.stop(grace=1.0)


@pytest.mark.parametrize(
    ("context", "says"),
    [("{bad", "is not JSON"), ("[1]", "is not a JSON object"), ('"' + "x" * 300 + '"', "bytes)")],
)
async def test_a_context_that_is_not_a_json_object_is_bad_input(
    context: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # fails on 7880001: a traceback (exit 1, which reads as DENIED) instead of exit 2
    question = ("document:readme", "view", "user:alice", "--tenant", "acme")
    unreachable = ("--server", "127.0.0.1:1")  # refused before any connection
    assert await _authz("check", *question, *unreachable, "--context", context) == 2
    err = capsys.readouterr().err
    assert "argument --context:" in err
    assert says in err
    assert len(err) < 600  # the value is echoed capped


@pytest.mark.parametrize("server", ["127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1", "127.0.0.1:5x"])
async def test_a_server_that_is_not_host_and_port_is_bad_input(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # 127.0.0.1:99999 dialled port 34463 (99999 - 65536): the call, and its API key,
    # could go to whatever listens there.
    question = ("document:readme", "view", "user:alice", "--tenant", "acme")
    assert await _authz("check", *question, "--server", server) == 2
    err = capsys.readouterr().err
    assert f"`{server}` is not host:port" in err
