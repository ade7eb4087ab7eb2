"""One grpc.aio server interceptor for request metrics, server spans and request ids.

Per call it: takes `x-request-id` from the metadata (or makes one), puts it in the
request-id context variable and echoes it in the trailing metadata; starts a server
span when tracing samples the call (W3C `traceparent` from the metadata is the
parent); runs the handler; counts the call by method and status code and observes
its latency. Aborts, cancellations and errors propagate unchanged: the interceptor
only looks at them on the way out.

The wrapped handler of each method is built once and reused, so a call pays for one
dict lookup in `intercept_service`, a scan of its metadata and the recording itself.
Handlers that are not coroutines or async generators (the sync stack, run in a thread
pool) are passed through untouched: none are registered in this service.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any, TypeAlias

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from authz_service.telemetry.context import (
    MAX_REQUEST_ID_LENGTH,
    REQUEST_ID_HEADER,
    new_request_id,
    request_id_var,
)
from authz_service.telemetry.metrics import MethodMetrics, Metrics
from authz_service.telemetry.tracing import Tracing

__all__ = ["TelemetryInterceptor"]

# Generic in the stubs only, hence the string.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
# The stubs say a handler, grpc passes None for an unknown method.
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]

_OK = grpc.StatusCode.OK
_UNKNOWN = grpc.StatusCode.UNKNOWN

# Status codes that mark a server span as failed (OpenTelemetry RPC conventions): the
# rest are the caller's problem, not the server's.
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


# Not subscripted: grpc.aio.ServerInterceptor is generic in the stubs only.
class TelemetryInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Metrics, a server span when sampled, and the request id, for every call."""

    def __init__(self, metrics: Metrics, tracing: Tracing | None = None) -> None:
        self._metrics = metrics
        self._tracing = tracing if tracing is not None and tracing.enabled else None
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler  # grpc answers UNIMPLEMENTED; unknown names never become labels
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _MethodCalls(method, handler, self._metrics, self._tracing).handler()
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def _code_on_error(exc: BaseException, context: Any) -> grpc.StatusCode:
    """The status grpc sends when the handler raised `exc`."""
    if isinstance(exc, asyncio.CancelledError):
        # The call's task is cancelled both when the client goes away and when the
        # deadline passes; only the second leaves no time.
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED
    code = context.code()  # set by abort() or set_code(); grpc sends UNKNOWN otherwise
    if isinstance(code, grpc.StatusCode) and code is not _OK:
        return code
    return _UNKNOWN


class _MethodCalls:
    """Instrumentation of one method: builds the wrapped handler and serves each call."""

    __slots__ = ("_attributes", "_metrics", "_name", "_original", "_tracing")

    def __init__(
        self, method: str, original: Handler, metrics: Metrics, tracing: Tracing | None
    ) -> None:
        self._original = original
        self._metrics: MethodMetrics = metrics.method(
            method, original.request_streaming, original.response_streaming
        )
        self._tracing = tracing
        self._name = method.lstrip("/")
        service, _, name = self._name.rpartition("/")
        self._attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}

    def handler(self) -> Handler:
        h = self._original
        serializers = {
            "request_deserializer": h.request_deserializer,
            "response_serializer": h.response_serializer,
        }
        if h.unary_unary is not None:
            behavior, make = h.unary_unary, grpc.unary_unary_rpc_method_handler
        elif h.unary_stream is not None:
            behavior, make = h.unary_stream, grpc.unary_stream_rpc_method_handler
        elif h.stream_unary is not None:
            behavior, make = h.stream_unary, grpc.stream_unary_rpc_method_handler
        elif h.stream_stream is not None:
            behavior, make = h.stream_stream, grpc.stream_stream_rpc_method_handler
        else:
            return h
        if inspect.iscoroutinefunction(behavior):
            return make(self._coroutine(behavior), **serializers)
        if inspect.isasyncgenfunction(behavior):
            return make(self._generator(behavior), **serializers)
        return h

    def _coroutine(self, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def call(request: Any, context: Any) -> Any:
            span, token = self._begin(context)
            started = perf_counter()
            code, error = _UNKNOWN, None
            try:
                response = await behavior(request, context)
                code = context.code() or _OK
                return response
            except BaseException as exc:
                code, error = _code_on_error(exc, context), exc
                raise
            finally:
                self._end(code, perf_counter() - started, span, token, error)

        return call

    def _generator(self, behavior: Callable[..., Any]) -> Callable[..., Awaitable[None]]:
        # Drives the generator and writes each response itself, so that everything,
        # including the generator's cleanup on cancellation, runs in the call's task.
        async def call(request: Any, context: Any) -> None:
            span, token = self._begin(context)
            started = perf_counter()
            code, error = _UNKNOWN, None
            responses = behavior(request, context)
            try:
                async for response in responses:
                    await context.write(response)
                code = context.code() or _OK
            except BaseException as exc:
                code, error = _code_on_error(exc, context), exc
                raise
            finally:
                try:
                    await responses.aclose()
                finally:
                    self._end(code, perf_counter() - started, span, token, error)

        return call

    def _begin(self, context: Any) -> tuple[Span | None, object]:
        request_id = traceparent = tracestate = None
        for key, value in context.invocation_metadata() or ():
            if key == REQUEST_ID_HEADER:
                request_id = value[:MAX_REQUEST_ID_LENGTH]
            elif key == "traceparent":
                traceparent = value
            elif key == "tracestate":
                tracestate = value
        if not request_id:
            request_id = new_request_id()
        # Not reset on the way out: the call's task and its context end with the call,
        # and grpc's own log line for an unhandled exception then carries the id too.
        request_id_var.set(request_id)
        context.set_trailing_metadata(((REQUEST_ID_HEADER, request_id),))
        if self._tracing is None:
            return None, None
        span = self._tracing.start_server_span(
            self._name, traceparent, tracestate, self._attributes
        )
        if span is None:
            return None, None
        span.set_attribute("authz.request_id", request_id)
        return span, otel_context.attach(trace.set_span_in_context(span))

    def _end(
        self,
        code: grpc.StatusCode,
        seconds: float,
        span: Span | None,
        token: object,
        error: BaseException | None,
    ) -> None:
        if not isinstance(code, grpc.StatusCode):  # set_code() with something odd
            code = _UNKNOWN
        self._metrics.observe(code, seconds)
        if span is None:
            return
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code in _SERVER_ERRORS:
            span.set_status(Status(StatusCode.ERROR, code.name))
            if isinstance(error, Exception) and code is _UNKNOWN:
                span.record_exception(error)
        otel_context.detach(token)  # type: ignore[arg-type]
        span.end()
