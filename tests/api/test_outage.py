"""The database stops mid-test: calls get UNAVAILABLE (never ALLOWED), and the service
recovers by itself once the database is back. Uses a throwaway cluster of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from authz_service.store.postgres import migrate
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import ALLOWED, Api
from tests.store.test_postgres_outage import Cluster


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    node = Cluster()
    await node.init()
    await node.start()
    try:
        yield node
    finally:
        await node.stop("immediate")
        node.remove()


async def _until(predicate: object, limit_s: float = 30.0) -> None:
    """Poll a remote condition (the server recovering); no local event can signal it."""
    async with asyncio.timeout(limit_s):
        while not await predicate():  # type: ignore[operator]  # noqa: ASYNC110 - polls another process
            await asyncio.sleep(0.1)


async def test_outage_gives_unavailable_then_recovers(cluster: Cluster, tmp_path: Path) -> None:
    await migrate(cluster.dsn)
    app = await start_app(server_settings(cluster.dsn, tmp_path, max_staleness_ms=200))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            api = Api(channel)
            await api.write_schema()
            token = await api.touch("acme", "document:plan#viewer@user:alice")
            assert (
                await api.check("acme", "document:plan", "view", "user:alice", fresh=token)
            ).decision == ALLOWED

            await cluster.stop("immediate")
            codes = []
            for subject in ("user:alice", "user:bob"):
                for kwargs in ({"full": True}, {"fresh": token}, {}):
                    try:
                        reply = await api.check("acme", "document:plan", "view", subject, **kwargs)  # type: ignore[arg-type]
                    except grpc.aio.AioRpcError as err:
                        codes.append(err.code())
                        continue
                    # Only a cached answer at a revision known within the staleness window
                    # may still be served; a fresh evaluation never happens without data.
                    assert not (kwargs.get("full")), "fully consistent answered during an outage"
                    codes.append(reply.decision)
            assert grpc.StatusCode.UNAVAILABLE in codes
            assert all(c in (grpc.StatusCode.UNAVAILABLE, ALLOWED) for c in codes[:3])
            bob = codes[3:]
            assert ALLOWED not in bob, bob

            await cluster.start()

            async def recovered() -> bool:
                try:
                    reply = await api.check(
                        "acme", "document:plan", "view", "user:alice", full=True
                    )
                except grpc.aio.AioRpcError as err:
                    if err.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    return False
                return reply.decision == ALLOWED

            await _until(recovered)
            written = await api.touch("acme", "document:plan#viewer@user:bob")
            reply = await api.check("acme", "document:plan", "view", "user:bob", fresh=written)
            assert reply.decision == ALLOWED
    finally:
        await app.stop(grace=1.0)
