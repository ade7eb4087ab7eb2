"""Reading an HTTP request's body (SCIM, the web console), bounded in size and in time.

Both are served by worker 0, whose event loop also serves gRPC: a body is read only up
to a limit, declared (Content-Length) or not (chunked), and only for so long, so that a
client cannot make the process hold a huge body or keep a request open by sending it a
byte at a time. A body left unread is never read: the answer closes the connection
(`CLOSE`), and uvicorn stops reading from a request whose body nobody asks for.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["BODY_TIMEOUT_S", "CLOSE", "BodyRefused", "has_body", "read_body"]

# A whole body must arrive within this: 30 s is a 4 MiB body at 140 KB/s.
BODY_TIMEOUT_S = 30.0
CLOSE = (b"connection", b"close")


class BodyRefused(Exception):
    """413 for a body over the limit, 408 for one that took too long."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _headers(scope: Any) -> dict[bytes, bytes]:
    return dict(scope.get("headers") or ())


def has_body(scope: Any) -> bool:
    """The request declares a body (one that an early answer leaves unread)."""
    headers = _headers(scope)
    return b"transfer-encoding" in headers or headers.get(b"content-length", b"0") != b"0"


async def read_body(scope: Any, receive: Any, *, limit: int) -> bytes | None:
    """The whole body, or None when the client went away. BodyRefused when the body
    declares more than `limit` bytes (nothing is read), turns out larger while read, or
    has not all arrived within BODY_TIMEOUT_S."""
    declared = _headers(scope).get(b"content-length", b"0")
    if not declared.isdigit() or int(declared) > limit:
        raise BodyRefused(413, f"request body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise BodyRefused(413, f"request body larger than {limit} bytes")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise BodyRefused(408, f"request body not received within {BODY_TIMEOUT_S:g} s") from None
