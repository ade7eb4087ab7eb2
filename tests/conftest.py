"""Test-wide setup: find a PostgreSQL server for the tests that need one.

Order: AUTHZ_TEST_DATABASE_URL; else the server every machine of this project runs at
127.0.0.1:5432; else (a laptop with only Python) an embedded server started for this
run and stopped at its end.
"""

from __future__ import annotations

import os

# gRPC's fork handlers ran in a child forked to exec a test PostgreSQL (tests/replica) while
# other threads were in gRPC, and the child died before exec ("epoll_wait error: Bad file
# descriptor"). Nothing here forks to keep using gRPC (workers are spawned): turn them off
# before grpc is first imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

_EMBEDDED: list[Any] = []  # the embedded server started for this run, if any


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("AUTHZ_TEST_DATABASE_URL") or _port_open("127.0.0.1", 5432):
        return
    from authz_service.store.postgres import start_embedded

    data_dir = Path(__file__).resolve().parent.parent / ".authz" / "test-pgdata"
    embedded = asyncio.run(start_embedded(data_dir))
    _EMBEDDED.append(embedded)
    # The embedded server's maintenance database is `postgres`; tests create their own.
    os.environ["AUTHZ_TEST_DATABASE_URL"] = embedded.dsn.rsplit("/", 1)[0] + "/postgres"


def pytest_unconfigure(config: pytest.Config) -> None:
    for embedded in _EMBEDDED:
        embedded.stop()
