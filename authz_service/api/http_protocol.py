"""uvicorn's HTTP/1.1 protocol with the bounds it lacks (SCIM, the web console).

uvicorn times out only an idle keep-alive connection after a response: a connection
that never sends a request, or sends its head a byte at a time, is held for good, and
nothing caps how many are held. Worker 0 serves these listeners on the event loop that
serves gRPC, in the process whose file descriptors gRPC also needs, so enough such
connections would stall every tenant. Here a request's head must arrive within
HEAD_TIMEOUT_S of the connection opening or of the previous response, and a listener
holds at most MAX_CONNECTIONS connections; a connection over either bound is closed.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HEAD_TIMEOUT_S", "MAX_CONNECTIONS", "BoundedH11Protocol"]

# nginx allows 60 s for a request's head, Apache 20-40 s; a real client sends it at once.
HEAD_TIMEOUT_S = 20.0
MAX_CONNECTIONS = 1024


class BoundedH11Protocol(H11Protocol):
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= MAX_CONNECTIONS:
            transport.abort()
            return
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        if self.transport is None:  # refused in connection_made: nothing to undo
            return
        super().connection_lost(exc)

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
