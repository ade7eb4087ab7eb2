"""`authz serve --workers 2` with TLS: every worker serves the certificate, and every
worker picks up replaced files without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.api.certs import Pair, make_ca, make_server, served_certificate
from tests.pg import FreshDatabase

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]
CONNECTIONS = 12  # new connections per look: SO_REUSEPORT spreads them over the workers


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    async with FreshDatabase() as dsn:
        yield dsn


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _health(port: int, ca: Pair) -> bool:
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem)
    async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def _serials(port: int, ca: Pair) -> set[int]:
    looks = [asyncio.to_thread(served_certificate, port, ca) for _ in range(CONNECTIONS)]
    return {cert.serial_number for cert in await asyncio.gather(*looks)}


async def test_two_workers_serve_tls_and_reload_replaced_files(pg_dsn: str, tmp_path: Path) -> None:
    ca = make_ca()
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    first = make_server(ca)
    first.write(cert, key)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHZ_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "authz_service", "serve", "--no-auth", "--workers", "2",
        "--listen", f"127.0.0.1:{port}", "--database-url", pg_dsn,
        "--data-dir", str(tmp_path), "--tls-cert", str(cert), "--tls-key", str(key),
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(90):
            lines = [(await proc.stdout.readline()).decode() for _ in range(2)]
        assert all(re.search(r"listening on .*\(TLS, worker \d\)", line) for line in lines), lines
        assert await _health(port, ca)
        assert await _serials(port, ca) == {first.cert.serial_number}

        rotated = make_server(ca)
        rotated.write(cert, key)
        assert await _serials(port, ca) == {rotated.cert.serial_number}
        assert await _health(port, ca)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            await proc.wait()
