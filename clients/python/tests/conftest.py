"""Fixtures: one real server for the session, a fresh client per test, a call recorder."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from authz_client import AsyncAuthzClient
from client_support import Recorder, ServerProcess


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    """`host:port` of a server with the demo data in tenant `demo`."""
    proc = ServerProcess()
    target = proc.start()
    yield target
    # The server must stop by itself on SIGTERM (graceful drain), not by being killed.
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
