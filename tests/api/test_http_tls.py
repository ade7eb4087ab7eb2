"""TLS on the HTTP listeners (SCIM, /metrics), with certificates made at test time.

They serve the gRPC port's certificate: a client trusting its CA is served, a plaintext
or wrong-CA client is refused, replaced files are served without a restart (a half
written rotation keeps the old pair), and without TLS, listening beyond loopback needs
the explicit plaintext setting, as on the gRPC port.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest
from cryptography.hazmat.primitives import serialization

from authz_service.api.http_tls import ReloadingContext
from authz_service.api.tls import TlsFiles
from authz_service.app import App
from authz_service.errors import InvalidArgument
from tests.api.certs import Pair, make_ca, make_server, served_certificate, trusting
from tests.api.conftest import server_settings


@dataclass
class Served:
    app: App
    ca: Pair
    cert: Path
    key: Path

    @property
    def scim_url(self) -> str:
        assert self.app.scim is not None
        return f"https://localhost:{self.app.scim.port}/scim/v2/acme/Users"

    @property
    def metrics_url(self) -> str:
        port = self.app.telemetry.bound_metrics_port
        assert port is not None
        return f"https://localhost:{port}/metrics"


async def _get(url: str, ca: Pair) -> httpx.Response:
    async with httpx.AsyncClient(verify=trusting(ca), timeout=5) as http:
        return await http.get(url)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    ca = make_ca()
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    make_server(ca).write(cert, key)
    settings = server_settings(
        "memory://",
        tmp_path,
        tls_cert=str(cert),
        tls_key=str(key),
        scim_listen="127.0.0.1:0",
        metrics_listen="127.0.0.1:0",
    )
    app = await App.start(settings)
    await app.store.tenants.create("acme")
    try:
        yield Served(app, ca, cert, key)
    finally:
        await app.stop(grace=1.0)


async def test_scim_and_metrics_are_served_over_tls(served: Served) -> None:
    scim = await _get(served.scim_url, served.ca)
    assert scim.status_code == 200
    assert scim.json()["totalResults"] == 0
    metrics = await _get(served.metrics_url, served.ca)
    assert metrics.status_code == 200
    assert "authz" in metrics.text


@pytest.mark.parametrize("listener", ["scim_url", "metrics_url"])
async def test_a_plaintext_client_is_refused(served: Served, listener: str) -> None:
    url = getattr(served, listener).replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        async with httpx.AsyncClient(timeout=5) as http:
            await http.get(url)


@pytest.mark.parametrize("listener", ["scim_url", "metrics_url"])
async def test_a_client_trusting_another_ca_is_refused(served: Served, listener: str) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await _get(getattr(served, listener), make_ca("another CA"))


async def test_replaced_certificate_files_are_served_without_a_restart(served: Served) -> None:
    assert served.app.scim is not None
    port = served.app.scim.port
    first = await asyncio.to_thread(served_certificate, port, served.ca)
    new_ca = make_ca("rotated CA")
    rotated = make_server(new_ca)
    rotated.write(served.cert, served.key)
    again = await asyncio.to_thread(served_certificate, port, new_ca)
    assert again.serial_number == rotated.cert.serial_number != first.serial_number
    # Both listeners: the new CA is trusted now, the old one no longer.
    for url in (served.scim_url, served.metrics_url):
        assert (await _get(url, new_ca)).status_code == 200
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await _get(url, served.ca)


async def test_a_half_written_rotation_keeps_the_old_pair(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="authz_service.api.http_tls")
    assert served.app.scim is not None
    port = served.app.scim.port
    first = await asyncio.to_thread(served_certificate, port, served.ca)
    other = make_server(served.ca)
    served.cert.write_bytes(other.cert_pem)  # the key is not replaced yet: they do not match
    for _ in range(3):
        kept = await asyncio.to_thread(served_certificate, port, served.ca)
        assert kept.serial_number == first.serial_number
    warnings = [r for r in caplog.records if "cannot be used yet" in r.getMessage()]
    assert len(warnings) == 1  # once per state of the files, not once per handshake
    other.write(served.cert, served.key)
    completed = await asyncio.to_thread(served_certificate, port, served.ca)
    assert completed.serial_number == other.cert.serial_number


# --- at start ------------------------------------------------------------------------------


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    pair = make_server(make_ca())
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    pair.write(cert, key)
    with pytest.raises(InvalidArgument) as missing:
        ReloadingContext(TlsFiles(tmp_path / "absent.pem", key))
    assert missing.value.field == "AUTHZ_TLS_CERT"
    assert missing.value.value == str(tmp_path / "absent.pem")
    assert "cannot be read" in missing.value.message


def test_a_key_of_another_certificate_is_named(tmp_path: Path) -> None:
    ca = make_ca()
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    make_server(ca).write(cert, key)
    key.write_bytes(make_server(ca).key_pem)
    with pytest.raises(InvalidArgument) as mismatch:
        ReloadingContext(TlsFiles(cert, key))
    assert mismatch.value.field == "AUTHZ_TLS_KEY"
    assert "is not the key of AUTHZ_TLS_CERT" in mismatch.value.message


def test_an_encrypted_key_is_refused_not_prompted_for(tmp_path: Path) -> None:
    pair = make_server(make_ca())
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    pair.write(cert, key)
    key.write_bytes(
        pair.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(InvalidArgument) as encrypted:
        ReloadingContext(TlsFiles(cert, key))
    assert encrypted.value.field == "AUTHZ_TLS_KEY"
    assert "unencrypted" in encrypted.value.message


@pytest.mark.parametrize(
    ("field", "setting"),
    [("scim_listen", "AUTHZ_SCIM_LISTEN"), ("metrics_listen", "AUTHZ_METRICS_LISTEN")],
)
async def test_plaintext_beyond_loopback_needs_the_explicit_setting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, field: str, setting: str
) -> None:
    beyond = server_settings("memory://", tmp_path, **{field: "0.0.0.0:0"})
    with pytest.raises(InvalidArgument) as refused:
        await App.start(beyond)
    assert refused.value.field == setting
    assert "AUTHZ_PLAINTEXT" in refused.value.message

    caplog.set_level(logging.WARNING, logger="authz_service.api.http_tls")
    # Every interface, port 0: the network here is loopback only, and the port is free.
    app = await App.start(
        server_settings("memory://", tmp_path, plaintext=True, **{field: "0.0.0.0:0"})
    )
    try:
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any(setting in w and "without TLS" in w for w in warnings)
    finally:
        await app.stop(grace=1.0)


async def test_plaintext_on_loopback_needs_no_setting_and_logs_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="authz_service.api.http_tls")
    settings = server_settings(
        "memory://", tmp_path, scim_listen="127.0.0.1:0", metrics_listen="127.0.0.1:0"
    )
    app = await App.start(settings)
    try:
        assert app.scim is not None
        assert not [r for r in caplog.records if "without TLS" in r.getMessage()]
    finally:
        await app.stop(grace=1.0)
