"""The clients over mTLS: `authz check` and the health check take TLS options, and the
Python client's `tls=` credentials work against the server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from authz_service import healthcheck
from authz_service.app import App
from authz_service.cli import main
from authz_service.cli.client_tls import ClientTls
from authz_service.errors import InvalidArgument
from tests.api.certs import make_ca, make_client, make_server
from tests.api.conftest import server_settings
from tests.api.helpers import Api

ACME_CHECK = "spiffe://authz/tenant/acme/scopes/check"
ACME_WRITE = "spiffe://authz/tenant/acme/scopes/write"
PLATFORM = "spiffe://authz/tenant/*/scopes/admin+write"


@dataclass
class Served:
    app: App
    ca: Path
    files: dict[str, tuple[Path, Path]]  # client certificate and key, by name

    @property
    def target(self) -> str:
        return f"localhost:{self.app.port}"

    def tls(self, name: str, **overrides: str) -> ClientTls:
        cert, key = self.files[name]
        values = {"ca": str(self.ca), "cert": str(cert), "key": str(key), **overrides}
        return ClientTls(**values)


@pytest.fixture
async def served(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Served]:
    ca = make_ca()
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    make_server(ca).write(tmp_path / "server.pem", tmp_path / "server.key")
    files = {}
    clients = {"acme": (ACME_CHECK,), "acme-write": (ACME_WRITE,), "platform": (PLATFORM,)}
    for name, uris in clients.items():
        files[name] = (tmp_path / f"{name}.pem", tmp_path / f"{name}.key")
        make_client(ca, *uris).write(*files[name])
    settings = server_settings(
        pg_dsn,
        tmp_path,
        auth=True,
        tls_cert=str(tmp_path / "server.pem"),
        tls_key=str(tmp_path / "server.key"),
        tls_client_ca=str(tmp_path / "ca.pem"),
    )
    app = await App.start(settings)
    try:
        running = Served(app, tmp_path / "ca.pem", files)
        async with running.tls("platform").aio_channel(running.target) as channel:
            await Api(channel).write_schema()
            await Api(channel).create_tenants("acme", "globex")
        yield running
    finally:
        await app.stop(grace=1.0)


async def _authz(*argv: str) -> int:
    def run() -> int:
        try:
            return main(list(argv))
        except SystemExit as exit_:
            return int(exit_.code or 0)

    return await asyncio.to_thread(run)


async def test_authz_check_takes_tls_options(
    served: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUTHZ_API_KEY", raising=False)
    cert, key = served.files["acme"]
    question = ("document:readme", "view", "user:alice", "--server", served.target)
    tls = ("--tls-ca", str(served.ca), "--tls-cert", str(cert), "--tls-key", str(key))
    assert await _authz("check", *question, "--tenant", "acme", *tls) == 1
    assert capsys.readouterr().out.startswith("DENIED")
    assert await _authz("check", *question, "--tenant", "globex", *tls) == 2
    assert "PERMISSION_DENIED" in capsys.readouterr().err
    assert await _authz("check", *question, "--tenant", "acme") == 2  # plaintext
    assert "UNAVAILABLE" in capsys.readouterr().err
    # The same from the environment.
    monkeypatch.setenv("AUTHZ_CLIENT_TLS_CA", str(served.ca))
    monkeypatch.setenv("AUTHZ_CLIENT_TLS_CERT", str(cert))
    monkeypatch.setenv("AUTHZ_CLIENT_TLS_KEY", str(key))
    assert await _authz("check", *question, "--tenant", "acme") == 1


async def test_authz_scim_takes_tls_options(
    served: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # fails on 26bbac5: `authz scim` dialled plaintext only and refused --tls-* options,
    # so it could not reach a server with TLS on
    monkeypatch.delenv("AUTHZ_API_KEY", raising=False)
    cert, key = served.files["acme-write"]
    tls = ("--tls-ca", str(served.ca), "--tls-cert", str(cert), "--tls-key", str(key))
    status = ("scim", "status", "--tenant", "acme", "--server", served.target)
    assert await _authz(*status, *tls) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "no drift"
    assert await _authz(*status) == 2  # plaintext
    assert "UNAVAILABLE" in capsys.readouterr().err


async def test_the_health_check_takes_tls_options(served: Served) -> None:
    target = f"127.0.0.1:{served.app.port}"
    # The server certificate names localhost and 127.0.0.1; the override names localhost.
    tls = served.tls("acme", server_name="localhost")
    healthy, message = await asyncio.to_thread(healthcheck.check, target, "", 3.0, tls)
    assert healthy, message
    healthy, message = await asyncio.to_thread(healthcheck.check, target, "", 3.0, None)
    assert not healthy
    assert "UNAVAILABLE" in message


def test_a_client_certificate_without_its_key_is_refused() -> None:
    with pytest.raises(InvalidArgument) as refused:
        ClientTls(cert="client.pem")
    assert refused.value.field == "tls_key"


def test_an_unreadable_ca_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(InvalidArgument) as refused:
        ClientTls(ca=str(missing)).credentials()
    assert refused.value.field == "tls_ca"
    assert refused.value.value == str(missing)
    assert "cannot be read" in refused.value.message


async def test_the_python_client_takes_tls_credentials(served: Served) -> None:
    from authz_client.aio import AsyncAuthzClient
    from authz_client.types import Decision

    cert, key = served.files["acme"]
    credentials = grpc.ssl_channel_credentials(
        root_certificates=served.ca.read_bytes(),
        private_key=key.read_bytes(),
        certificate_chain=cert.read_bytes(),
    )
    async with AsyncAuthzClient(served.target, tenant="acme", tls=credentials) as client:
        result = await client.check("document:readme", "view", "user:alice")
    assert result.decision is Decision.DENIED  # an answer: the handshake and identity held
    assert result.decision_id
