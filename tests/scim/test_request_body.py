"""A SCIM request's body is read only after its caller is admitted, only up to the limit
and only for so long (docs/identity.md "Limits"). The body was read whole before the key
was even looked at, with no bound: an unauthenticated 100 MB upload held worker 0,
whose loop also serves gRPC, for seconds."""

from __future__ import annotations

import asyncio

import pytest

from authz_service.api import http_body
from authz_service.api.scim import app as scim_app
from authz_service.credentials import Scope
from tests.api.helpers import DENIED
from tests.scim.conftest import ScimServer

BIG = 50 << 20
PIECE = b"A" * 65_536


async def _exchange(
    port: int, head: bytes, chunks: list[bytes], meanwhile: ScimServer | None = None
) -> bytes:
    """Send a request's head and `chunks`, stop (the body unfinished), and return the
    status line. With `meanwhile`, a gRPC Check is answered while the body is pending."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        if meanwhile is not None:
            api = await meanwhile.api()
            reply = await api.check("acme", "document:x", "view", "user:nobody")
            assert reply.decision == DENIED
        async with asyncio.timeout(20):
            return await reader.readline()
    finally:
        writer.close()


def _head(path: str, token: str | None, framing: bytes) -> bytes:
    auth = b"authorization: Bearer %s\r\n" % token.encode() if token else b""
    return (
        b"POST /scim/v2/acme/%s HTTP/1.1\r\nhost: 127.0.0.1\r\n" % path.encode()
        + b"content-type: application/scim+json\r\n"
        + auth
        + framing
        + b"\r\n"
    )


def _port(scim: ScimServer) -> int:
    assert scim.app.scim is not None
    return scim.app.scim.port


async def test_a_refused_caller_is_answered_before_its_body_is_read(scim: ScimServer) -> None:
    """401 / 403 while only 64 KiB of a declared 50 MB were sent, and gRPC answers
    meanwhile: the body waits for nobody."""
    declared = b"content-length: %d\r\n" % BIG
    status = await _exchange(_port(scim), _head("Users", None, declared), [PIECE], scim)
    assert status.startswith(b"HTTP/1.1 401"), status
    other = await scim.key("globex")
    status = await _exchange(_port(scim), _head("Users", other, declared), [PIECE])
    assert status.startswith(b"HTTP/1.1 403"), status
    no_scim = await scim.key("acme", Scope.CHECK)
    status = await _exchange(_port(scim), _head("Groups", no_scim, declared), [PIECE])
    assert status.startswith(b"HTTP/1.1 403"), status


async def test_a_body_over_the_limit_is_413_however_it_is_sent(scim: ScimServer) -> None:
    token = await scim.key("acme")
    declared = _head("Users", token, b"content-length: %d\r\n" % BIG)
    status = await _exchange(_port(scim), declared, [PIECE], scim)
    assert status.startswith(b"HTTP/1.1 413"), status
    chunk = b"%x\r\n%s\r\n" % (len(PIECE), PIECE)
    over = scim_app.MAX_BODY_BYTES // len(PIECE) + 2  # past the limit, never ended
    chunked = _head("Users", token, b"transfer-encoding: chunked\r\n")
    status = await _exchange(_port(scim), chunked, [chunk] * over, scim)
    assert status.startswith(b"HTTP/1.1 413"), status
    async with await scim.http() as http:  # the listener goes on serving
        created = await http.post("/Users", json={"userName": "dana"})
        assert created.status_code == 201, created.text


async def test_a_body_that_stops_coming_is_408(
    scim: ScimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_body, "BODY_TIMEOUT_S", 0.5)
    token = await scim.key("acme")
    head = _head("Users", token, b"content-length: 100\r\n")
    status = await _exchange(_port(scim), head, [b'{"userName": '], scim)
    assert status.startswith(b"HTTP/1.1 408"), status


async def test_an_endpoint_open_to_anyone_reads_no_body(scim: ScimServer) -> None:
    # ServiceProviderConfig needs no key, so admission let its body through: anyone could
    # make worker 0 read 4 MiB and wait 30 s for it, for any tenant name.
    head = (
        b"GET /scim/v2/nosuch/ServiceProviderConfig HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-length: %d\r\n\r\n" % scim_app.MAX_BODY_BYTES  # within the limit
    )
    status = await _exchange(_port(scim), head, [PIECE], scim)
    assert status.startswith(b"HTTP/1.1 413"), status
    async with await scim.http() as http:  # without a body it is served as before
        assert (await http.get("/ServiceProviderConfig")).status_code == 200
