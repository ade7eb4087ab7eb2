"""uvicorn's HTTP/1.1 protocol with the bounds it lacks (SCIM, the web console).

uvicorn times out only an idle keep-alive connection after a response: a connection
that never sends a request, or sends its head a byte at a time, is held for good, and
nothing caps how many are held. Worker 0 serves these listeners on the event loop that
serves gRPC, in the process whose file descriptors gRPC also needs, so enough such
connections would stall every tenant. Here a request's head must arrive within
HEAD_TIMEOUT_S of the connection opening or of the previous response, and a listener
holds at most MAX_CONNECTIONS connections; a connection over either bound is closed.

An answer given before a body was read whole (413, 408, 401 ...) closes the connection
with the body still coming. Closing a socket with unread data makes the kernel reset
the connection, and the reset can destroy the answer before the client reads it, so the
client would see "connection reset" instead of the status. The close therefore lingers,
as nginx's does: the server's side is shut down for writing and what still arrives is
discarded, until the client closes, LINGER_S pass or LINGER_BYTES were discarded.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HEAD_TIMEOUT_S", "LINGER_BYTES", "LINGER_S", "MAX_CONNECTIONS", "BoundedH11Protocol"]

# nginx allows 60 s for a request's head, Apache 20-40 s; a real client sends it at once.
HEAD_TIMEOUT_S = 20.0
MAX_CONNECTIONS = 1024
LINGER_S = 2.0
LINGER_BYTES = 8 << 20  # twice the largest body a listener reads


class _LingeringClose:
    """The connection's transport, but for `close` while the client is still sending a
    body nobody read, which lingers (module docstring). Everything else is the
    transport's own."""

    def __init__(self, transport: asyncio.Transport, protocol: BoundedH11Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._timer: asyncio.TimerHandle | None = None
        self._discarded = 0
        self.lingering = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def close(self) -> None:
        if self.lingering:
            return  # ends on the client's close, the timer or the byte cap
        unread = self._protocol.conn.their_state is h11.SEND_BODY
        if not unread or self._transport.is_closing() or not self._transport.can_write_eof():
            self._transport.close()
            return
        self.lingering = True
        self._transport.write_eof()  # after what is buffered: the answer goes out whole
        self._transport.resume_reading()
        self._timer = self._protocol.loop.call_later(LINGER_S, self.end)

    def discard(self, size: int) -> None:
        self._discarded += size
        if self._discarded > LINGER_BYTES:
            self.end()

    def end(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport.close()


class BoundedH11Protocol(H11Protocol):
    _head_timer: asyncio.TimerHandle | None = None
    _closing: _LingeringClose | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= MAX_CONNECTIONS:
            transport.abort()
            return
        self._closing = _LingeringClose(transport, self)
        super().connection_made(cast(asyncio.Transport, self._closing))
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        if self._closing is None:  # refused in connection_made: nothing to undo
            return
        self._closing.end()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._closing is not None and self._closing.lingering:
            self._closing.discard(len(data))
            return
        super().data_received(data)

    def eof_received(self) -> None:
        if self._closing is not None and self._closing.lingering:
            self._closing.end()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._stop_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._await_head()

    def _await_head(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_late)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
