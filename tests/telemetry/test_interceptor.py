"""What the interceptor wraps, and what it leaves alone."""

from __future__ import annotations

from typing import Any

import grpc

from authz_service.telemetry import Metrics, TelemetryInterceptor


class Details:
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


async def unary(request: bytes, context: Any) -> bytes:
    return request


def sync_unary(request: bytes, context: Any) -> bytes:
    return request


async def test_wrapped_handler_is_built_once_per_method() -> None:
    original = grpc.unary_unary_rpc_method_handler(unary)

    async def continuation(details: Any) -> Any:
        return original

    interceptor = TelemetryInterceptor(Metrics())
    first = await interceptor.intercept_service(continuation, Details("/a.B/C"))  # type: ignore[arg-type]
    second = await interceptor.intercept_service(continuation, Details("/a.B/C"))  # type: ignore[arg-type]
    assert first is second
    assert first is not original
    assert first.unary_unary is not unary


async def test_unknown_and_sync_handlers_pass_through() -> None:
    sync = grpc.unary_unary_rpc_method_handler(sync_unary)
    handlers = {"/a.B/Sync": sync, "/a.B/Missing": None}

    async def continuation(details: Any) -> Any:
        return handlers[details.method]

    interceptor = TelemetryInterceptor(Metrics())
    assert await interceptor.intercept_service(continuation, Details("/a.B/Sync")) is sync  # type: ignore[arg-type]
    assert await interceptor.intercept_service(continuation, Details("/a.B/Missing")) is None  # type: ignore[arg-type]
