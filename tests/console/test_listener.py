"""The console's listener and its way to the service, without a browser: TLS, the
plaintext rule, and every question going through the gRPC API with the signer's key
(authenticated, logged with its credential id, refused outside its tenant)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx2 as httpx
import pytest

from authz_service.api import http_body
from authz_service.api.gen.authz.v1 import audit_pb2, audit_pb2_grpc, core_pb2
from authz_service.app import App
from authz_service.credentials import Scope, new_key
from authz_service.errors import InvalidArgument
from authz_service.model import RelationshipUpdate, UpdateOp, parse_relationship
from authz_service.service.audit import CallInfo
from tests.api.certs import make_ca, make_server, trusting
from tests.api.conftest import server_settings, start_app
from tests.pg import FreshDatabase

DEMO_SCHEMA = (
    "definition user {}\ndefinition doc {\n relation viewer: user\n permission view = viewer\n}"
)


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


async def _login(http: httpx.AsyncClient, key: str, target: str = "/playground") -> httpx.Response:
    form = await http.get("/login")
    return await http.post(
        "/login", data={"api_key": key, "next": target, "csrf": _csrf(form.text)}
    )


async def _sign_in(http: httpx.AsyncClient, key: str) -> str:
    """Signs in; the CSRF token of the new session."""
    reply = await _login(http, key)
    assert reply.status_code == 303, reply.text
    page = await http.get("/playground")
    assert page.status_code == 200
    return _csrf(page.text)


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    async with FreshDatabase() as dsn:
        yield dsn


@pytest.fixture
async def app(pg_dsn: str, tmp_path: Path) -> AsyncIterator[App]:
    settings = server_settings(
        pg_dsn,
        tmp_path,
        auth=True,
        auth_cache_ttl_s=0,
        log_mode="durable",
        console_listen="127.0.0.1:0",
    )
    running = await start_app(settings)
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


async def test_a_question_is_a_logged_api_call_with_the_signed_in_key(app: App) -> None:
    await app.schemas.write(DEMO_SCHEMA)
    rel = parse_relationship("doc:a#viewer@user:ann")
    await app.relationships.write("acme", [RelationshipUpdate(UpdateOp.TOUCH, rel)], CallInfo())
    record, key = new_key(tenant="acme", scopes=[Scope.CHECK], name="console")
    await app.store.keys.create(record)
    auditor, audit_key = new_key(tenant="acme", scopes=[Scope.AUDIT], name="auditor")
    await app.store.keys.create(auditor)
    assert app.console is not None
    base = f"http://127.0.0.1:{app.console.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        csrf = await _sign_in(http, key)
        fields = {"csrf": csrf, "action": "check", "resource": "doc:a", "permission": "view"}
        asked = await http.post(
            "/playground/ask", data={**fields, "subject": "user:ann", "tenant": "acme"}
        )
        assert asked.status_code == 200
        assert 'data-testid="decision">ALLOWED' in asked.text
        match = re.search(r'data-testid="decision-id">([0-9A-Z]+)<', asked.text)
        assert match is not None
        # Another tenant: the server refuses the key, as it would any client.
        other = await http.post(
            "/playground/ask", data={**fields, "subject": "user:ann", "tenant": "globex"}
        )
        assert "PERMISSION_DENIED" in other.text

    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        reply = await audit_pb2_grpc.AuditServiceStub(channel).ExplainDecision(
            audit_pb2.ExplainDecisionRequest(tenant="acme", decision_id=match.group(1)),
            metadata=(("authorization", f"Bearer {audit_key}"),),
        )
    assert reply.record.credential_id == record.key_id
    assert reply.record.decision == core_pb2.DECISION_ALLOWED


async def test_a_revoked_key_ends_its_session(app: App) -> None:
    record, key = new_key(tenant="acme", scopes=[Scope.CHECK], name="console")
    await app.store.keys.create(record)
    assert app.console is not None
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{app.console.port}", timeout=10
    ) as http:
        await _sign_in(http, key)
        await app.store.keys.revoke(record.key_id)
        page = await http.get("/playground")
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=/playground"


async def test_a_sign_in_without_the_forms_token_is_refused(app: App) -> None:
    """Login CSRF: another site's form cannot sign the browser in with its own key."""
    record, key = new_key(tenant="acme", scopes=[Scope.CHECK], name="console")
    await app.store.keys.create(record)
    assert app.console is not None
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{app.console.port}", timeout=10
    ) as http:
        reply = await http.post("/login", data={"api_key": key, "next": "/"})
        assert reply.status_code == 401
        assert "expired" in reply.text
        assert "authz_console=" not in reply.headers.get("set-cookie", "")
        assert (await _login(http, key)).status_code == 303


async def test_a_key_without_check_does_not_see_the_playground(app: App) -> None:
    record, key = new_key(tenant="acme", scopes=[Scope.AUDIT], name="auditor")
    await app.store.keys.create(record)
    assert app.console is not None
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{app.console.port}", timeout=10
    ) as http:
        reply = await _login(http, key, "/")
        assert reply.status_code == 303
        page = await http.get("/playground")
        assert page.status_code == 403
        assert "needs the `check` scope" in page.text
        assert 'href="/playground"' not in page.text


async def test_the_console_serves_tls_with_a_secure_cookie(tmp_path: Path) -> None:
    ca = make_ca()
    cert, key_file = tmp_path / "server.pem", tmp_path / "server.key"
    make_server(ca).write(cert, key_file)
    settings = server_settings(
        "memory://",
        tmp_path,
        auth=True,
        tls_cert=str(cert),
        tls_key=str(key_file),
        console_listen="127.0.0.1:0",
    )
    app = await App.start(settings)
    try:
        record, key = new_key(tenant="*", scopes=[Scope.CHECK], name="console")
        await app.store.keys.create(record)
        assert app.console is not None
        base = f"https://localhost:{app.console.port}"
        async with httpx.AsyncClient(base_url=base, verify=trusting(ca), timeout=10) as http:
            reply = await _login(http, key, "/")
            assert reply.status_code == 303
            cookie = next(c for c in reply.headers.get_list("set-cookie") if "authz_console=" in c)
            assert "HttpOnly" in cookie
            assert "Secure" in cookie
            assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        with pytest.raises(httpx.HTTPError):
            async with httpx.AsyncClient(timeout=5) as plain:
                await plain.get(f"http://127.0.0.1:{app.console.port}/login")
    finally:
        await app.stop(grace=1.0)


async def test_plaintext_beyond_loopback_is_refused_naming_the_setting(tmp_path: Path) -> None:
    settings = server_settings("memory://", tmp_path, console_listen="0.0.0.0:0")
    with pytest.raises(InvalidArgument, match="AUTHZ_CONSOLE_LISTEN"):
        await App.start(settings)


async def test_text_from_a_form_is_escaped_everywhere_it_is_shown(app: App) -> None:
    record, key = new_key(tenant="acme", scopes=[Scope.CHECK], name="console")
    await app.store.keys.create(record)
    assert app.console is not None
    hostile = "</textarea><script>alert(1)</script>"
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{app.console.port}", timeout=10
    ) as http:
        csrf = await _sign_in(http, key)
        fields = {"csrf": csrf, "schema": hostile, "relationships": hostile, "assertions": hostile}
        for path in ("/playground/validate", "/playground/ask"):
            reply = await http.post(path, data={**fields, "resource": hostile, "action": "why"})
            assert reply.status_code == 200
            assert "<script>alert(1)" not in reply.text
            assert "&lt;script&gt;alert(1)" in reply.text


async def test_with_authentication_off_there_is_no_sign_in(tmp_path: Path) -> None:
    """The README's `serve --demo --no-auth --console`: straight to the playground."""
    settings = server_settings(
        "memory://", tmp_path, auth=False, demo=True, console_listen="127.0.0.1:0"
    )
    app = await App.start(settings)
    try:
        assert app.console is not None
        base = f"http://127.0.0.1:{app.console.port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            assert (await http.get("/login")).status_code == 303
            page = await http.get("/playground")
            assert page.status_code == 200
            assert "authentication off" in page.text
            fields = {
                "csrf": _csrf(page.text),
                "action": "why",
                "resource": "document:readme",
                "permission": "view",
                "subject": "user:alice",
                "tenant": "demo",
            }
            asked = await http.post("/playground/ask", data=fields)
            assert 'data-testid="decision">ALLOWED' in asked.text
            assert "<svg" in asked.text
    finally:
        await app.stop(grace=1.0)


async def _post_status(port: int, head: bytes, chunks: list[bytes]) -> bytes:
    """Send a request's head and then `chunks`, stop, and return the status line: the
    server may answer before the body ends, as a client that keeps writing would not
    see (its writes end in a reset)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        async with asyncio.timeout(30):
            return await reader.readline()
    finally:
        writer.close()


async def test_a_body_over_the_form_limit_is_refused_however_it_is_sent(app: App) -> None:
    """docs/console.md: a POST form is parsed only up to 1 MiB. The cap read only the
    declared Content-Length: a chunked body (none declared) was read whole, by anyone,
    since /login takes posts before sign-in."""
    assert app.console is not None
    port = app.console.port
    piece = b"A" * 65_536
    chunked = [b"%x\r\n%s\r\n" % (len(piece), piece)] * 20  # 1.25 MiB, never ended
    head = (
        b"POST /login HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/x-www-form-urlencoded\r\n"
    )
    status = await _post_status(port, head + b"transfer-encoding: chunked\r\n\r\n", chunked)
    assert status.startswith(b"HTTP/1.1 413"), status
    declared = head + b"content-length: %d\r\n\r\n" % (2 << 20)
    assert (await _post_status(port, declared, [])).startswith(b"HTTP/1.1 413")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        assert (await http.get("/login")).status_code == 200  # ordinary use goes on


async def test_a_body_that_stops_coming_is_refused(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body sent a byte at a time held its request open for as long as the client
    liked: it now has BODY_TIMEOUT_S to arrive (api/http_body.py), sign-in included."""
    monkeypatch.setattr(http_body, "BODY_TIMEOUT_S", 0.5)
    assert app.console is not None
    head = (
        b"POST /login HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\n"
    )
    status = await _post_status(app.console.port, head, [b"api_key="])
    assert status.startswith(b"HTTP/1.1 408"), status
