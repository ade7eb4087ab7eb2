"""Fixtures: one real server for the session, a fresh client per test, a call recorder."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from authz_client import AsyncAuthzClient
from client_support import Recorder, ServerProcess
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.pg import FreshDatabase, run_aside


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    """`host:port` of a server with the demo data in tenant `demo`."""
    proc = ServerProcess()
    target = proc.start()
    yield target
    # The server must stop by itself on SIGTERM (graceful drain), not by being killed.
    assert proc.stop() == 0


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for the session, dropped at the end."""
    database = FreshDatabase("authz_client_test")
    dsn = run_aside(database.__aenter__())
    yield dsn
    run_aside(database.__aexit__(None, None, None))


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Ed25519 key (PEM) for the decision log's signed checkpoints."""
    key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = tmp_path_factory.mktemp("log-key") / "signing.pem"
    path.write_bytes(key)
    return path


@pytest.fixture(scope="session")
def pg_server(pg_dsn: str, signing_key: Path) -> Iterator[str]:
    """`host:port` of a server on PostgreSQL with the durable, signed decision log and the
    demo data, for the calls that need them (audit, Watch across a restart)."""
    proc = ServerProcess(
        flags=(
            *("--database-url", pg_dsn),
            *("--decision-log", "durable"),
            *("--signing-key", str(signing_key)),
        )
    )
    target = proc.start()
    yield target
    assert proc.stop() == 0


@pytest.fixture
async def client(server: str) -> AsyncIterator[AsyncAuthzClient]:
    async with AsyncAuthzClient(server, tenant="demo") as client:
        yield client


@pytest.fixture
def unique() -> str:
    """An id no other test uses, so tests sharing the server do not see each other."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
