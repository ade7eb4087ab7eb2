"""Checks shared by the cursor tests of every paginated API."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterable, Awaitable
from typing import Any, TypeVar

import grpc
import pytest

from authz_service.api.gen.authz.v1 import core_pb2
from tests.api.test_bad_input import field_violations

T = TypeVar("T")


async def collect(stream: AsyncIterable[T]) -> list[T]:
    return [item async for item in stream]


async def _finish(call: Awaitable[Any] | AsyncIterable[Any]) -> None:
    if isinstance(call, AsyncIterable):
        await collect(call)
    else:
        await call


async def refused(call: Awaitable[Any] | AsyncIterable[Any]) -> grpc.aio.AioRpcError:
    """The error a unary call or a whole stream ends with."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _finish(call)
    return err.value


async def cursor_refused(call: Awaitable[Any] | AsyncIterable[Any], needle: str) -> None:
    """INVALID_ARGUMENT naming the `cursor` field, saying `needle`."""
    err = await refused(call)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert needle in (err.details() or "")
    assert [field for field, _ in field_violations(err)] == ["cursor"]


def tampered(token: str) -> list[str]:
    """Altered copies of a cursor: one character changed, cut short, or extended."""
    middle = len(token) // 2
    changed = "A" if token[middle] != "A" else "B"
    return [token[:middle] + changed + token[middle + 1 :], token[:-4], token + "AA"]


def rehashed(cursor: core_pb2.Cursor, **changes: object) -> core_pb2.Cursor:
    """`cursor` with fields of its JSON replaced (`at=...`, `k=...`) and its check made
    again, as any client can: cursors are not signed (api/cursors.py)."""
    text = cursor.token.partition(".")[0]
    body = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    raw = json.dumps(body | changes, sort_keys=True, separators=(",", ":")).encode()
    encoded = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return core_pb2.Cursor(token=f"{encoded}.{hashlib.sha256(raw).hexdigest()[:16]}")
