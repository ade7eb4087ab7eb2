"""TLS and mTLS on a real gRPC port, with certificates made at test time.

Plaintext and wrong-CA clients are refused; with a client CA, a client without a
certificate is refused and a certificate naming tenant A is PERMISSION_DENIED on tenant
B; replacing the certificate files changes what new connections see, without a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from authz_service.api.gen.authz.v1 import schema_pb2
from authz_service.api.tls import is_loopback, plaintext_allowed
from authz_service.app import App
from authz_service.credentials import Scope, new_key
from authz_service.decisionlog import RecordFilter, iter_entries
from authz_service.errors import InvalidArgument
from tests.api.certs import Pair, make_ca, make_client, make_server, served_certificate
from tests.api.conftest import server_settings
from tests.api.helpers import ALLOWED, SCHEMA, Api

ACME_CHECK_WRITE = "spiffe://authz/tenant/acme/scopes/check+write"
PLATFORM_ADMIN = "spiffe://authz/tenant/*/scopes/admin+write"


@dataclass
class Tls:
    app: App
    ca: Pair
    cert: Path
    key: Path

    @property
    def target(self) -> str:
        return f"localhost:{self.app.port}"

    def channel(self, ca: Pair | None = None, client: Pair | None = None) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(ca or self.ca).cert_pem,
            private_key=client.key_pem if client else None,
            certificate_chain=client.cert_pem if client else None,
        )
        return grpc.aio.secure_channel(self.target, credentials)


async def _start(pg_dsn: str, tmp_path: Path, *, client_ca: bool, auth: bool) -> Tls:
    ca = make_ca()
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    make_server(ca).write(cert, key)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    settings = server_settings(
        pg_dsn,
        tmp_path,
        auth=auth,
        tls_cert=str(cert),
        tls_key=str(key),
        tls_client_ca=str(ca_file) if client_ca else "",
        log_mode="buffered",
    )
    return Tls(await App.start(settings), ca, cert, key)


@pytest.fixture
async def tls(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Tls]:
    running = await _start(pg_dsn, tmp_path, client_ca=False, auth=False)
    try:
        yield running
    finally:
        await running.app.stop(grace=1.0)


@pytest.fixture
async def mtls(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Tls]:
    running = await _start(pg_dsn, tmp_path, client_ca=True, auth=True)
    try:
        yield running
    finally:
        await running.app.stop(grace=1.0)


async def _code(channel: grpc.aio.Channel) -> grpc.StatusCode:
    """The status of one ReadSchema-free call (write_schema) on `channel`, OK if none."""
    try:
        async with channel:
            await Api(channel).write_schema()
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


# --- server TLS -------------------------------------------------------------------------


async def test_a_tls_client_trusting_the_ca_is_served(tls: Tls) -> None:
    assert await _code(tls.channel()) == grpc.StatusCode.OK


async def test_a_plaintext_client_is_refused(tls: Tls) -> None:
    channel = grpc.aio.insecure_channel(tls.target)
    assert await _code(channel) == grpc.StatusCode.UNAVAILABLE


async def test_a_client_trusting_another_ca_is_refused(tls: Tls) -> None:
    assert await _code(tls.channel(ca=make_ca("another CA"))) == grpc.StatusCode.UNAVAILABLE


async def test_replaced_certificate_files_are_served_without_a_restart(tls: Tls) -> None:
    first = await asyncio.to_thread(served_certificate, tls.app.port, tls.ca)
    new_ca = make_ca("rotated CA")
    rotated = make_server(new_ca)
    assert rotated.cert.serial_number != first.serial_number
    rotated.write(tls.cert, tls.key)
    served = await asyncio.to_thread(served_certificate, tls.app.port, new_ca)
    assert served.serial_number == rotated.cert.serial_number
    # gRPC clients see it too: the new CA is trusted now, the old one no longer.
    assert await _code(tls.channel(ca=new_ca)) == grpc.StatusCode.OK
    assert await _code(tls.channel(ca=tls.ca)) == grpc.StatusCode.UNAVAILABLE


async def test_a_half_written_rotation_keeps_the_old_pair(tls: Tls) -> None:
    first = await asyncio.to_thread(served_certificate, tls.app.port, tls.ca)
    other = make_server(tls.ca)
    tls.cert.write_bytes(other.cert_pem)  # the key is not replaced yet: they do not match
    served = await asyncio.to_thread(served_certificate, tls.app.port, tls.ca)
    assert served.serial_number == first.serial_number
    other.write(tls.cert, tls.key)
    served = await asyncio.to_thread(served_certificate, tls.app.port, tls.ca)
    assert served.serial_number == other.cert.serial_number


async def test_a_missing_certificate_file_stops_the_start_naming_it(
    pg_dsn: str, tmp_path: Path
) -> None:
    # It was a bare FileNotFoundError: the files were stat'ed before they were read.
    key = tmp_path / "server.key"
    make_server(make_ca()).write(tmp_path / "server.pem", key)
    absent = tmp_path / "absent.pem"
    settings = server_settings(pg_dsn, tmp_path, tls_cert=str(absent), tls_key=str(key))
    with pytest.raises(InvalidArgument) as missing:
        await App.start(settings)
    assert missing.value.field == "AUTHZ_TLS_CERT"
    assert missing.value.value == str(absent)


# --- mTLS and certificate identities ------------------------------------------------------


async def test_without_a_client_certificate_the_handshake_is_refused(mtls: Tls) -> None:
    assert await _code(mtls.channel()) == grpc.StatusCode.UNAVAILABLE


async def test_a_client_certificate_from_another_ca_is_refused(mtls: Tls) -> None:
    stranger = make_client(make_ca("another CA"), PLATFORM_ADMIN)
    assert await _code(mtls.channel(client=stranger)) == grpc.StatusCode.UNAVAILABLE


async def test_a_certificate_without_an_identity_still_needs_a_key(mtls: Tls) -> None:
    anonymous = make_client(mtls.ca)
    assert await _code(mtls.channel(client=anonymous)) == grpc.StatusCode.UNAUTHENTICATED


async def test_a_tenant_certificate_answers_on_its_tenant_and_is_denied_on_another(
    mtls: Tls,
) -> None:
    admin = make_client(mtls.ca, PLATFORM_ADMIN, name="operator")
    acme = make_client(mtls.ca, ACME_CHECK_WRITE, name="acme-service")
    async with mtls.channel(client=admin) as channel:
        await Api(channel).write_schema()
        await Api(channel).create_tenants("acme", "globex")
    async with mtls.channel(client=acme) as channel:
        api = Api(channel)
        written = await api.touch("acme", "document:plan#viewer@user:alice")
        reply = await api.check("acme", "document:plan", "view", "user:alice", fresh=written)
        assert reply.decision == ALLOWED
        for call in (
            api.touch("globex", "document:plan#viewer@user:alice"),
            api.check("globex", "document:plan", "view", "user:alice"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await call
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "not valid for tenant `globex`" in (denied.value.details() or "")
    await mtls.app.stop(grace=1.0)  # flushes the decision log
    log_dir = mtls.app.settings.decision_log_dir
    records = list(iter_entries(log_dir, RecordFilter(decision_id=reply.decision_id)))
    assert [e.entry.record.credential_id for e in records] == [f"cert:{ACME_CHECK_WRITE}"]


async def test_a_certificate_lacking_a_scope_is_denied(mtls: Tls) -> None:
    reader = make_client(mtls.ca, "spiffe://authz/tenant/*/scopes/check")
    assert await _code(mtls.channel(client=reader)) == grpc.StatusCode.PERMISSION_DENIED


async def test_an_api_key_still_works_over_mtls(mtls: Tls) -> None:
    record, token = new_key(tenant="*", scopes=frozenset({Scope.ADMIN}))
    await mtls.app.store.keys.create(record)
    anonymous = make_client(mtls.ca)
    async with mtls.channel(client=anonymous) as channel:
        reply = await Api(channel).schema.WriteSchema(
            schema_pb2.WriteSchemaRequest(schema=SCHEMA),
            metadata=(("authorization", f"Bearer {token}"),),
        )
    assert reply.schema_version


# --- plaintext ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("127.5.5.5:0", True),
        ("[::1]:50051", True),
        ("localhost:50051", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        (":50051", False),
        ("10.1.2.3:50051", False),
        ("authz.example.com:50051", False),
    ],
)
def test_loopback_is_told_apart(listen: str, loopback: bool) -> None:
    assert is_loopback(listen) is loopback


def test_plaintext_beyond_loopback_needs_the_explicit_setting() -> None:
    assert plaintext_allowed("127.0.0.1:50051", plaintext=False) is False
    with pytest.raises(InvalidArgument) as refused:
        plaintext_allowed("0.0.0.0:50051", plaintext=False)
    assert refused.value.field == "AUTHZ_LISTEN"
    assert "AUTHZ_PLAINTEXT" in refused.value.message
    assert plaintext_allowed("0.0.0.0:50051", plaintext=True) is True


async def test_plaintext_beyond_loopback_logs_a_warning(
    pg_dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="authz_service.api.tls")
    # Every interface, port 0: the network here is loopback only, and the port is free.
    app = await App.start(server_settings(pg_dsn, tmp_path, listen="0.0.0.0:0", plaintext=True))
    try:
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert any("without TLS" in r.getMessage() for r in warnings)
    finally:
        await app.stop(grace=1.0)


async def test_plaintext_on_loopback_logs_no_warning(
    pg_dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="authz_service.api.tls")
    app = await App.start(server_settings(pg_dsn, tmp_path))
    try:
        assert not [r for r in caplog.records if "without TLS" in r.getMessage()]
    finally:
        await app.stop(grace=1.0)
