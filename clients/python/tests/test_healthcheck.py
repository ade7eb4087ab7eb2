"""The container health probe (`python -m authz_service.healthcheck`) against the real server.

It lives with the client tests because it is a client of the server and needs the same
running-server fixture; it runs the module as Docker's HEALTHCHECK would.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from client_support import REPO_ROOT, free_port

from authz_service.healthcheck import probe_target


def _probe(listen: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authz_service.healthcheck", "--timeout", "5"],
        cwd=REPO_ROOT,
        env={**os.environ, "AUTHZ_LISTEN": listen},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_serving_server_is_healthy(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    probe = _probe(f"0.0.0.0:{port}")  # as in the image: bound everywhere, probed on loopback
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith("SERVING")


def test_nothing_listening_is_unhealthy() -> None:
    probe = _probe(f"127.0.0.1:{free_port()}")
    assert probe.returncode == 1
    assert "UNAVAILABLE" in probe.stderr


@pytest.mark.parametrize(
    ("listen", "target"),
    [
        ("0.0.0.0:50051", "127.0.0.1:50051"),
        ("[::]:50051", "[::1]:50051"),
        ("10.1.2.3:7000", "10.1.2.3:7000"),
        ("localhost:50051", "localhost:50051"),
    ],
)
def test_probe_target(listen: str, target: str) -> None:
    assert probe_target(listen) == target


def test_port_zero_cannot_be_probed() -> None:
    with pytest.raises(ValueError, match="no fixed port"):
        probe_target("127.0.0.1:0")
