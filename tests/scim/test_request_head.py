"""A connection to the SCIM listener (or the console, which shares it) must send its
request's head in time, and a listener holds only so many connections (docs/identity.md
"Limits"). uvicorn held a connection that never sent a request, or sent its head a byte
at a time, for good, with no cap on how many: enough of them would take the file
descriptors and the event loop that worker 0's gRPC needs."""

from __future__ import annotations

import asyncio

import pytest

from authz_service.api import http_protocol
from authz_service.api.scim import app as scim_app
from tests.api.helpers import DENIED
from tests.scim.conftest import ScimServer

PIECE = b"A" * 65_536
GET = b"GET /scim/v2/acme/ServiceProviderConfig HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"


def _port(scim: ScimServer) -> int:
    assert scim.app.scim is not None
    return scim.app.scim.port


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    """The server ends the connection (within 10 s); False if it is still open then."""
    try:
        async with asyncio.timeout(10):
            while await reader.read(65_536):
                pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


@pytest.fixture
def short_head(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_protocol, "HEAD_TIMEOUT_S", 0.5)


@pytest.mark.usefixtures("short_head")
@pytest.mark.parametrize("sent", [b"", b"POST /scim/v2/acme/Users HTTP/1.1\r\nhost:"])
async def test_a_head_that_does_not_come_closes_the_connection(
    scim: ScimServer, sent: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(scim))
    try:
        writer.write(sent)
        await writer.drain()
        assert await _closed_by_server(reader)
    finally:
        writer.close()
    api = await scim.api()  # gRPC and the listener go on serving
    assert (await api.check("acme", "document:x", "view", "user:nobody")).decision == DENIED
    async with await scim.http() as http:
        assert (await http.get("/ServiceProviderConfig")).status_code == 200


@pytest.mark.usefixtures("short_head")
async def test_after_a_response_the_next_head_must_come_in_time_too(scim: ScimServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(scim))
    try:
        writer.write(GET)
        status = await reader.readline()
        assert status.startswith(b"HTTP/1.1 200"), status
        # A byte of the next head stops uvicorn's keep-alive timer; the head rule holds.
        writer.write(b"G")
        await writer.drain()
        assert await _closed_by_server(reader)
    finally:
        writer.close()


async def test_a_listener_holds_only_so_many_connections(
    scim: ScimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_protocol, "MAX_CONNECTIONS", 3)
    held = [await asyncio.open_connection("127.0.0.1", _port(scim)) for _ in range(3)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", _port(scim))
        assert await _closed_by_server(reader)
        writer.close()
        _, held_writer = held.pop()
        held_writer.close()
        await held_writer.wait_closed()
        await _until_served(_port(scim))
    finally:
        for _, writer in held:
            writer.close()


async def _until_served(port: int) -> None:
    """A connection is served again once one is given back (the listener sees the close
    when its loop gets to it, so a refused attempt or two may come first)."""
    async with asyncio.timeout(10):
        while True:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(GET)
                status = await reader.readline()
                if status.startswith(b"HTTP/1.1 200"):
                    return
            except ConnectionResetError:
                pass
            finally:
                writer.close()
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("token", [False, True], ids=["refused caller", "body over the limit"])
async def test_an_early_answer_reaches_a_client_still_sending_its_body(
    scim: ScimServer, token: bool
) -> None:
    """A client sends its whole body before it reads, as HTTP clients do. The server
    answers 401 (or 413) without reading it and closes: closing the socket with the body
    unread reset the connection, so the client's sending failed and the answer was lost."""
    size = scim_app.MAX_BODY_BYTES + (len(PIECE) if token else 0)
    auth = b"authorization: Bearer %s\r\n" % (await scim.key("acme")).encode() if token else b""
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(scim))
    try:
        writer.write(
            b"POST /scim/v2/acme/Users HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            b"content-type: application/scim+json\r\n%scontent-length: %d\r\n\r\n" % (auth, size)
        )
        for _ in range(size // len(PIECE)):
            writer.write(PIECE)
            await writer.drain()
        async with asyncio.timeout(10):
            status = await reader.readline()
        assert status.startswith(b"HTTP/1.1 413" if token else b"HTTP/1.1 401"), status
    finally:
        writer.close()
