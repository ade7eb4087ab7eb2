"""Request bodies that do not decode are INVALID_ARGUMENT, not UNKNOWN with a traceback.

grpc deserializes a request before any handler runs. When the bytes are not a valid
encoding of the request message (corrupt, truncated, a string field that is not UTF-8,
messages nested deeper than protobuf's limit of 64, about 32 levels of a context), the
parser raises, and grpc.aio answers UNKNOWN with the parser's text and logs a traceback
at ERROR: one log flood per hostile call. `DecodingInterceptor` swaps every handler's
deserializer for one that never raises: on failure it returns an `Undecodable` marker, and
the wrapped behavior answers the marker with INVALID_ARGUMENT and one INFO log line.

It must come before the interceptors that read the request (authentication checks the
tenant field), and after telemetry so that refused calls are still counted. A handler
whose deserializer cannot fail (`never_raises`: the auth interceptor's, which leaves the
body as bytes and decodes it itself with `decode`) is left as it is, so such a call
pays for no wrapper.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import grpc

from authz_service.api.status import to_status
from authz_service.errors import InvalidArgument

__all__ = ["DecodingInterceptor", "Undecodable", "decode", "never_raises"]

log = logging.getLogger(__name__)

# Generic in the stubs only, hence the string.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

# The parser's causes, said shortly; anything else is "not a valid encoding".
_CAUSES = (
    ("UTF-8", "a string field is not valid UTF-8"),
    ("MaxDepth", "messages are nested deeper than 64 levels (a context: about 32)"),
)


_NEVER_RAISING: set[Callable[[bytes], Any]] = set()

D = TypeVar("D", bound=Callable[[bytes], Any])


def never_raises(deserializer: D) -> D:
    """Mark `deserializer` as one that cannot fail: `guard` leaves its handlers alone."""
    _NEVER_RAISING.add(deserializer)
    return deserializer


@dataclass(frozen=True, slots=True)
class Undecodable:
    """What the deserializer returns instead of raising: why the body was refused."""

    message_type: str
    cause: str

    def error(self) -> InvalidArgument:
        return InvalidArgument(
            f"the request body is not a valid `{self.message_type}`: {self.cause}"
        )


def _cause(exc: Exception) -> str:
    text = str(exc)
    for needle, cause in _CAUSES:
        if needle in text:
            return cause
    return "not a valid protobuf encoding"


def decode(deserializer: Callable[[bytes], Any], raw: bytes) -> Any:
    """The request `raw` encodes, or an Undecodable saying why not; never raises."""
    try:
        return deserializer(raw)
    except Exception as exc:  # DecodeError, and whatever else a parser may raise
        return Undecodable(_message_type(deserializer), _cause(exc))


def _tolerant(deserializer: Callable[[bytes], Any], message_type: str) -> Callable[[bytes], Any]:
    def tolerant(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception as exc:  # DecodeError, and whatever else a parser may raise
            return Undecodable(message_type, _cause(exc))

    return tolerant


async def _refuse(method: str, request: Undecodable, context: Context) -> None:
    log.info("refused %s: %s", method, request.cause)
    # grpc-stubs predates abort_with_status on the aio context; it exists at runtime.
    await context.abort_with_status(to_status(request.error()))  # type: ignore[attr-defined]


def _checking_iterator(method: str, requests: Any, context: Context) -> AsyncIterator[Any]:
    async def checked() -> AsyncIterator[Any]:
        async for request in requests:
            if isinstance(request, Undecodable):
                await _refuse(method, request, context)
            yield request

    return checked()


def _guard_behavior(method: str, behavior: Any, streaming_request: bool) -> Any:
    """`behavior` refusing undecodable requests, of the same kind (coroutine or async
    generator) so that grpc drives it the same way; None if it is neither."""

    def checked(request: Any, context: Context) -> Any:
        return _checking_iterator(method, request, context) if streaming_request else request

    if inspect.isasyncgenfunction(behavior):

        async def guarded_stream(request: Any, context: Context) -> AsyncIterator[Any]:
            if isinstance(request, Undecodable):
                await _refuse(method, request, context)
            responses = behavior(checked(request, context), context)
            try:
                async for response in responses:
                    yield response
            finally:
                await responses.aclose()

        return guarded_stream
    if inspect.iscoroutinefunction(behavior):

        async def guarded(request: Any, context: Context) -> Any:
            if isinstance(request, Undecodable):
                await _refuse(method, request, context)
            return await behavior(checked(request, context), context)

        return guarded
    return None


def _message_type(deserializer: Any) -> str:
    # Generated stubs pass `Message.FromString`; its class names the type.
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "request message"))


def guard(method: str, handler: Handler) -> Handler:
    """`handler` with a deserializer that never raises and a behavior that refuses what
    it could not decode. Handlers of the sync stack (none here) are returned unchanged."""
    if handler.request_deserializer is None or handler.request_deserializer in _NEVER_RAISING:
        return handler
    kinds = (
        ("unary_unary", grpc.unary_unary_rpc_method_handler),
        ("unary_stream", grpc.unary_stream_rpc_method_handler),
        ("stream_unary", grpc.stream_unary_rpc_method_handler),
        ("stream_stream", grpc.stream_stream_rpc_method_handler),
    )
    for name, make in kinds:
        behavior = getattr(handler, name)
        if behavior is None:
            continue
        guarded = _guard_behavior(method, behavior, handler.request_streaming)
        if guarded is None:
            return handler
        deserializer = handler.request_deserializer
        return make(
            guarded,
            request_deserializer=_tolerant(deserializer, _message_type(deserializer)),
            response_serializer=handler.response_serializer,
        )
    return handler


# Not subscripted: grpc.aio.ServerInterceptor is generic in the stubs only.
class DecodingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Applies `guard` to every method's handler (wrapped once per method)."""

    def __init__(self) -> None:
        self._guarded: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler  # grpc answers UNIMPLEMENTED
        method = handler_call_details.method
        cached = self._guarded.get(method)
        if cached is None or cached[0] is not handler:
            cached = (handler, guard(method, handler))
            self._guarded[method] = cached
        return cached[1]
