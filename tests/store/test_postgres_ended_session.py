"""A pooled connection whose session PostgreSQL ended while it sat idle in the pool.

The server sends a FATAL ErrorResponse, then closes the socket. asyncpg 0.32 reads the
error outside any operation and leaves its protocol in state 2 (discarding messages
until a ReadyForQuery that never comes), yet reports the connection open until it reads
the end of the stream; the pool hands it out in between. Its next statement fails
before anything is sent: "cannot switch to state 11; another operation (2) is in
progress", an InternalClientError, which the store let through untranslated (the
revision tracker's poll then died with it). `LateEof` holds that moment open.
"""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from authz_service.errors import Unavailable
from authz_service.model import RelationshipUpdate, UpdateOp, parse_relationship
from authz_service.store.postgres import PostgresStore, RevisionTracker, connect
from tests.pg import with_database
from tests.store.late_eof import LateEof

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/postgres"  # nothing listens on port 1


def touch(text: str) -> RelationshipUpdate:
    return RelationshipUpdate(UpdateOp.TOUCH, parse_relationship(text))


@pytest.fixture
async def proxy(pg_dsn: str) -> AsyncIterator[LateEof]:
    parts = urlsplit(pg_dsn)
    async with LateEof(parts.hostname or "127.0.0.1", parts.port or 5432) as late:
        yield late


@pytest.fixture
async def store(pg_dsn: str, proxy: LateEof) -> AsyncIterator[PostgresStore]:
    """A store whose one pooled connection passes through the proxy."""
    parts = urlsplit(pg_dsn)
    dsn = with_database(f"postgresql://{parts.username}@127.0.0.1:{proxy.port}", parts.path[1:])
    opened = await connect(dsn, min_size=1, max_size=1)
    yield opened
    proxy.deliver_eofs()  # closing waits for the server to close each connection
    await opened.close()


async def end_the_pooled_session(store: PostgresStore, proxy: LateEof, pg_dsn: str) -> None:
    """Have PostgreSQL end the session of the store's idle pooled connection, and return
    once the client has read the FATAL error but not yet the end of the stream."""
    async with store.pool.acquire() as conn:
        pid = conn.get_server_pid()
        # asyncpg offers no public handle on the socket; the test needs it only to wait
        # until the client has read what the server sent.
        client: socket.socket = conn._con._transport.get_extra_info("socket")
    admin = await asyncpg.connect(pg_dsn)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    await proxy.server_closed()
    async with asyncio.timeout(10):
        # Unread bytes are the FATAL error; each turn of the loop lets the client read.
        while select.select([client], [], [], 0)[0]:  # noqa: ASYNC110 - polls a socket
            await asyncio.sleep(0)


async def test_a_read_on_a_connection_the_server_ended_runs_on_a_new_one(
    store: PostgresStore, proxy: LateEof, pg_dsn: str
) -> None:
    await end_the_pooled_session(store, proxy, pg_dsn)
    assert await store.db.fetchval("SELECT 1") == 1
    assert proxy.accepted == 2  # the ended connection was not used again


async def test_a_write_on_a_connection_the_server_ended_is_unavailable_not_a_driver_error(
    store: PostgresStore, proxy: LateEof, pg_dsn: str
) -> None:
    # A tenant of its own: the database is shared with other tests of the session.
    tenant = "ended-session-write"
    await end_the_pooled_session(store, proxy, pg_dsn)
    with pytest.raises(Unavailable):
        await store.write(tenant, [touch("doc:one#viewer@user:ann")])
    # nothing was written, and the next write gets a connection that works
    assert await store.head_revision(tenant) == 0
    assert await store.write(tenant, [touch("doc:one#viewer@user:ann")]) == 1
    assert proxy.accepted == 2


async def test_the_trackers_poll_survives_a_connection_the_server_ended(
    store: PostgresStore, proxy: LateEof, pg_dsn: str
) -> None:
    await end_the_pooled_session(store, proxy, pg_dsn)
    # Its own connection cannot be opened, so the tracker polls through the store's pool
    # at once: the first poll meets the ended connection.
    tracker = RevisionTracker(UNREACHABLE, poll_interval=0.1, connect_timeout=1, store=store)
    try:
        assert await tracker.start(wait=10)
    finally:
        await tracker.aclose()
    assert proxy.accepted == 2


async def test_a_connection_the_driver_lost_track_of_is_ended_not_pooled(
    store: PostgresStore,
) -> None:
    held: list[int] = []

    async def fail_while_holding() -> None:
        async with store.db.acquire() as conn:
            held.append(conn.get_server_pid())
            raise asyncpg.InternalClientError("protocol in an unexpected state")

    with pytest.raises(asyncpg.InternalClientError):
        await fail_while_holding()
    async with store.db.acquire() as conn:
        assert conn.get_server_pid() not in held
