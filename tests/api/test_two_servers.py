"""Read-your-writes across two server processes sharing one database: a token returned by
a write on one server is honoured by a check on the other, including a revocation."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from authz_service.api.gen.authz.v1 import core_pb2, schema_pb2, tenants_pb2
from authz_service.app import App
from tests.api.helpers import ALLOWED, DENIED, Api

LISTENING = re.compile(rb"authz: listening on [\d.]+:(\d+)")


@pytest.fixture
async def second_server(pg_dsn: str, tmp_path: Path) -> AsyncIterator[int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "authz_service", "serve",
        "--database-url", pg_dsn, "--listen", "127.0.0.1:0",
        "--decision-log", "off", "--no-migrate", "--no-auth", "--data-dir", str(tmp_path / "b"),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "AUTHZ_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            line = await proc.stdout.readline()
        match = LISTENING.search(line)
        assert match, line
        yield int(match.group(1))
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await proc.wait() == 0


async def test_tokens_carry_read_your_writes_across_processes(app: App, second_server: int) -> None:
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel_a,
        grpc.aio.insecure_channel(f"127.0.0.1:{second_server}") as channel_b,
    ):
        a, b = Api(channel_a), Api(channel_b)
        await a.write_schema()
        for round_ in range(5):
            user = f"user:u{round_}"
            granted = await a.touch("acme", f"document:plan#viewer@{user}")
            assert (
                await b.check("acme", "document:plan", "view", user, fresh=granted)
            ).decision == ALLOWED
            # Warm b's cache at the granted revision, then revoke on a: the revocation's
            # token must not be answered from that entry.
            assert (await b.check("acme", "document:plan", "view", user)).decision in (
                ALLOWED,
                DENIED,
            )
            revoked = await a.delete("acme", f"document:plan#viewer@{user}")
            assert (
                await b.check("acme", "document:plan", "view", user, fresh=revoked)
            ).decision == DENIED


PERMISSIVE = """
definition user {}
definition document {
    relation viewer: user
    relation banned: user
    permission view = viewer
}
"""
RESTRICTIVE = PERMISSIVE.replace("permission view = viewer", "permission view = viewer - banned")


async def test_a_schema_change_on_one_server_binds_reads_on_the_other(
    app: App, second_server: int
) -> None:
    """Schema changes on A: B's fully consistent reads, and its reads at least as fresh as
    the change's token or a later write's, never decide with the older schema, although
    B's background refresh (every second) has not run yet."""
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel_a,
        grpc.aio.insecure_channel(f"127.0.0.1:{second_server}") as channel_b,
    ):
        a, b = Api(channel_a), Api(channel_b)
        await a.write_schema(PERMISSIVE)
        await a.touch("acme", "document:plan#viewer@user:eve", "document:plan#banned@user:eve")

        async def eve(fresh: str | None = None, full: bool = False) -> int:
            reply = await b.check(
                "acme", "document:plan", "view", "user:eve", fresh=fresh, full=full
            )
            return int(reply.decision)

        for round_ in range(3):
            opened = await a.schema.WriteSchema(schema_pb2.WriteSchemaRequest(schema=PERMISSIVE))
            granted = await a.touch("acme", f"document:a{round_}#viewer@user:ann")
            assert opened.written_at.token
            assert await eve(fresh=granted) == ALLOWED
            assert await eve(fresh=opened.written_at.token) == ALLOWED
            assert await eve(full=True) == ALLOWED
            assert await eve() == ALLOWED  # also warms B's cache

            closed = await a.schema.WriteSchema(schema_pb2.WriteSchemaRequest(schema=RESTRICTIVE))
            written = await a.touch("acme", f"document:b{round_}#viewer@user:ann")
            token = closed.written_at.token
            decisions = [await eve(fresh=written), await eve(full=True), await eve(fresh=token)]
            # The schema's token is bound to no tenant: every tenant accepts it.
            other = await b.check("globex", "document:plan", "view", "user:eve", fresh=token)
            assert decisions == [DENIED, DENIED, DENIED]
            assert other.decision == DENIED


async def test_a_tenant_created_suspended_or_deleted_on_one_server_binds_the_other(
    app: App, second_server: int
) -> None:
    """B never remembers that a tenant was unknown, so one created on A is usable on B at
    once; A's suspension binds B from its token; after A deletes it, B's fully
    consistent calls are NOT_FOUND."""
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel_a,
        grpc.aio.insecure_channel(f"127.0.0.1:{second_server}") as channel_b,
    ):
        a, b = Api(channel_a), Api(channel_b)
        await a.write_schema()
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await b.check("newco", "document:plan", "view", "user:ann")
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        await a.create_tenants("newco")
        granted = await b.touch("newco", "document:plan#viewer@user:ann")
        assert (
            await b.check("newco", "document:plan", "view", "user:ann", fresh=granted)
        ).decision == ALLOWED
        suspended = await a.tenants.SuspendTenant(
            tenants_pb2.SuspendTenantRequest(name="newco", reason="unpaid")
        )
        reply = await b.check(
            "newco", "document:plan", "view", "user:ann", fresh=suspended.written_at.token
        )
        assert reply.decision == DENIED
        assert reply.explanation.deny_reason == core_pb2.DENY_REASON_TENANT_SUSPENDED
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await b.touch("newco", "document:other#viewer@user:ann")
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        await a.tenants.DeleteTenant(tenants_pb2.DeleteTenantRequest(name="newco", reason="gone"))
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await b.check("newco", "document:plan", "view", "user:ann", full=True)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as no_write:
            await b.touch("newco", "document:plan#viewer@user:ann")
        assert no_write.value.code() == grpc.StatusCode.NOT_FOUND
