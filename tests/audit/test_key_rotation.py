"""Rotating the checkpoint signing key (docs/decision-log.md, "Key rotation"): a server
restarted with a new key keeps a log that `authz audit verify` proves with both public
keys, and that the server's own VerifyLog proves once it is told the old public key
(AUTHZ_LOG_PREVIOUS_PUBLIC_KEYS). Either key alone still fails, naming the other."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from authz_service.api.gen.authz.v1 import audit_pb2, audit_pb2_grpc
from authz_service.cli import main
from authz_service.config import Settings
from authz_service.decisionlog import generate_keypair, key_id, load_public_key
from authz_service.errors import InvalidArgument, NotFound
from tests.api.conftest import start_app
from tests.api.helpers import Api

from .helpers import QUESTIONS, SCHEMA, LogSetup, channel_to, check, run_cli, running, setup_world


@pytest.fixture
async def rotated(log_setup: LogSetup, tmp_path: Path) -> tuple[LogSetup, Path, Path]:
    """Decisions logged under the first key, then under a second one: (setup with the
    second key as the server's signing key, first public key, second public key)."""
    async with asyncio.timeout(120), running(log_setup) as app, channel_to(app) as channel:
        api = Api(channel)
        await api.write_schema(SCHEMA)
        await setup_world(api, "acme")
        await check(api, "acme", QUESTIONS[0])
    private, public = generate_keypair(tmp_path / "second")
    setup = replace(
        log_setup,
        private_key=private,
        public_key=public,
        settings=replace(log_setup.settings, log_signing_key=str(private)),
    )
    async with asyncio.timeout(120), running(setup) as app, channel_to(app) as channel:
        await check(Api(channel), "acme", QUESTIONS[1])
    return setup, log_setup.public_key, public


def _verify(setup: LogSetup, *keys: Path) -> tuple[int, str]:
    given = [arg for key in keys for arg in ("--public-key", str(key))]
    status, out, _ = run_cli("audit", "verify", "--log-dir", str(setup.log_dir), *given)
    return status, out


def test_verify_takes_every_key_the_log_was_signed_with(
    rotated: tuple[LogSetup, Path, Path],
) -> None:
    setup, first, second = rotated
    status, out = _verify(setup, first, second)
    assert status == 0, out
    assert out.splitlines()[-1] == "2 streams verified, 0 failed"
    for only, other in ((first, second), (second, first)):
        status, out = _verify(setup, only)
        assert status == 1
        absent = key_id(load_public_key(other))
        assert f"bad_signature: signed by key `{absent}`, which is not one of" in out


async def test_the_server_verifies_with_its_previous_public_keys(
    rotated: tuple[LogSetup, Path, Path],
) -> None:
    setup, first, second = rotated
    request = audit_pb2.VerifyLogRequest(tenant="acme")
    async with running(setup, log_mode="off") as app, channel_to(app) as channel:
        without = await audit_pb2_grpc.AuditServiceStub(channel).VerifyLog(request)
    previous = str(first)
    async with (
        running(setup, log_mode="off", log_previous_public_keys=previous) as app,
        channel_to(app) as channel,
    ):
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        both = await stub.VerifyLog(request)
        # A caller's own keys replace the server's: one PEM block per key.
        pems = first.read_text() + second.read_text()
        given = await stub.VerifyLog(audit_pb2.VerifyLogRequest(tenant="acme", public_key_pem=pems))
        only_new = await stub.VerifyLog(
            audit_pb2.VerifyLogRequest(tenant="acme", public_key_pem=second.read_text())
        )
    assert not without.verified
    assert without.first_problem.kind == audit_pb2.LogProblem.KIND_BAD_SIGNATURE
    assert f"key `{key_id(load_public_key(first))}`" in without.first_problem.description
    assert both.verified, both.first_problem
    assert given.verified, given.first_problem
    assert not only_new.verified


async def test_previous_public_keys_are_checked_at_start(
    log_setup: LogSetup, tmp_path: Path
) -> None:
    missing = replace(log_setup.settings, log_previous_public_keys=str(tmp_path / "gone.pem"))
    with pytest.raises(NotFound, match=r"AUTHZ_LOG_PREVIOUS_PUBLIC_KEYS: key file `.*gone\.pem`"):
        await start_app(missing)
    private = replace(log_setup.settings, log_previous_public_keys=str(log_setup.private_key))
    with pytest.raises(InvalidArgument, match="is not a pem public key"):
        await start_app(private)


def test_previous_public_keys_need_a_signing_key(log_setup: LogSetup) -> None:
    with pytest.raises(InvalidArgument, match="AUTHZ_LOG_PREVIOUS_PUBLIC_KEYS needs"):
        Settings(log_previous_public_keys=str(log_setup.public_key))


def test_every_key_given_is_read(
    rotated: tuple[LogSetup, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # The first of two keys is not silently replaced by the second: a bad one is bad input.
    setup, first, _ = rotated
    with pytest.raises(SystemExit) as exited:
        main([
            "audit", "verify", "--log-dir", str(setup.log_dir),
            "--public-key", str(setup.private_key), "--public-key", str(first),
        ])  # fmt: skip
    assert exited.value.code == 2
    assert "argument --public-key: `" in (err := capsys.readouterr().err)
    assert "` is not a pem public key" in err


async def test_a_bad_pem_in_the_request_is_invalid(rotated: tuple[LogSetup, Path, Path]) -> None:
    setup, first, _ = rotated
    pems = first.read_text() + "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    async with running(setup, log_mode="off") as app, channel_to(app) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await audit_pb2_grpc.AuditServiceStub(channel).VerifyLog(
                audit_pb2.VerifyLogRequest(tenant="acme", public_key_pem=pems)
            )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
