"""The in-memory relationship index in a running server: an uncached Check reads no
relationship from PostgreSQL once the tenant is indexed, and tokens and fully consistent
reads still see every write at once (a stale ALLOWED is the worst bug there is)."""

from __future__ import annotations

import grpc
import pytest

from authz_service.app import App
from tests.api.helpers import ALLOWED, DENIED, Api


@pytest.fixture
async def api(channel: grpc.aio.Channel) -> Api:
    client = Api(channel)
    await client.write_schema()
    return client


def count_reads(app: App) -> list[str]:
    calls: list[str] = []
    store = app.store
    original = store.read

    def counting(*args: object, **kw: object) -> object:
        calls.append("read")
        return original(*args, **kw)  # type: ignore[arg-type]

    store.read = counting  # type: ignore[method-assign]
    return calls


async def test_an_uncached_check_reads_no_relationship_from_the_database(
    app: App, api: Api
) -> None:
    # fails on 838c60d: every subproblem was a SQL read (and there is no index)
    await api.touch(
        "acme",
        "document:plan#viewer@group:eng#member",
        "group:eng#member@group:core#member",
        "group:core#member@user:alice",
    )
    assert app.index is not None
    assert await app.index.wait_loaded("acme")
    token = await api.touch("acme", "group:core#member@user:bob")  # a revision to follow
    reads = count_reads(app)
    for user in ("alice", "bob", "carol"):
        reply = await api.check("acme", "document:plan", "view", f"user:{user}", fresh=token)
        assert reply.decision == (DENIED if user == "carol" else ALLOWED)
    assert reads == []
    assert app.index.applied("acme") is not None


async def test_tokens_and_full_consistency_see_every_write_through_the_index(
    app: App, api: Api
) -> None:
    await api.touch("acme", "document:plan#viewer@group:eng#member")
    assert app.index is not None
    assert await app.index.wait_loaded("acme")
    for _ in range(10):
        granted = await api.touch("acme", "group:eng#member@user:alice")
        reply = await api.check("acme", "document:plan", "view", "user:alice", fresh=granted)
        assert reply.decision == ALLOWED
        revoked = await api.delete("acme", "group:eng#member@user:alice")
        reply = await api.check("acme", "document:plan", "view", "user:alice", fresh=revoked)
        assert reply.decision == DENIED
        reply = await api.check("acme", "document:plan", "view", "user:alice", full=True)
        assert reply.decision == DENIED
    assert app.index.stats().memory_reads > 0
