"""TLS options against the server's TLS: a private CA, mTLS, a server name override."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from authz_client import AsyncAuthzClient, AuthzClient, UnavailableError
from client_support import ServerProcess

from tests.api.certs import Pair, make_ca, make_client, make_server


@pytest.fixture(scope="module")
def ca() -> Pair:
    return make_ca()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory, ca: Pair) -> Path:
    """ca.pem; server.pem/.key for `authz.internal` (and 127.0.0.1); client.pem/.key."""
    directory = tmp_path_factory.mktemp("pki")
    (directory / "ca.pem").write_bytes(ca.cert_pem)
    make_server(ca, "authz.internal").write(directory / "server.pem", directory / "server.key")
    make_client(ca).write(directory / "client.pem", directory / "client.key")
    return directory


@pytest.fixture(scope="module")
def mtls_server(pki: Path) -> Iterator[str]:
    proc = ServerProcess(
        flags=(
            *("--tls-cert", str(pki / "server.pem")),
            *("--tls-key", str(pki / "server.key")),
            *("--tls-client-ca", str(pki / "ca.pem")),
        )
    )
    target = proc.start()
    yield target
    assert proc.stop() == 0


def _localhost(target: str) -> str:
    return "localhost:" + target.rsplit(":", 1)[1]


async def test_mtls_with_a_private_ca_and_a_server_name(mtls_server: str, pki: Path) -> None:
    # Dialled as `localhost`, which the certificate does not name: the override does.
    async with AsyncAuthzClient(
        _localhost(mtls_server),
        tenant="demo",
        tls_ca=pki / "ca.pem",
        tls_cert=pki / "client.pem",
        tls_key=(pki / "client.key").read_bytes(),  # a path or the PEM itself
        tls_server_name="authz.internal",
    ) as client:
        assert (await client.check("document:readme", "view", "user:alice")).allowed


def test_sync_client_over_mtls(mtls_server: str, pki: Path) -> None:
    with AuthzClient(
        mtls_server,
        tenant="demo",
        tls_ca=str(pki / "ca.pem"),
        tls_cert=pki / "client.pem",
        tls_key=pki / "client.key",
    ) as client:
        assert client.check("document:readme", "view", "user:alice").allowed


@pytest.mark.parametrize(
    ("client_certificate", "server_name"),
    [
        pytest.param(False, "authz.internal", id="no-client-certificate"),
        pytest.param(True, "elsewhere.example", id="wrong-server-name"),
        pytest.param(True, None, id="localhost-not-in-the-certificate"),
    ],
)
async def test_handshakes_that_must_fail(
    mtls_server: str, pki: Path, client_certificate: bool, server_name: str | None
) -> None:
    async with AsyncAuthzClient(
        _localhost(mtls_server),
        tenant="demo",
        retries=0,
        tls_ca=pki / "ca.pem",
        tls_cert=pki / "client.pem" if client_certificate else None,
        tls_key=pki / "client.key" if client_certificate else None,
        tls_server_name=server_name,
    ) as client:
        with pytest.raises(UnavailableError):
            await client.check("document:readme", "view", "user:alice")


def test_tls_options_are_checked(pki: Path) -> None:
    with pytest.raises(ValueError, match="tls_cert and tls_key"):
        AuthzClient("127.0.0.1:1", tls_cert=pki / "client.pem")
    with pytest.raises(ValueError, match="tls_ca: cannot read"):
        AuthzClient("127.0.0.1:1", tls_ca=pki / "missing.pem")
