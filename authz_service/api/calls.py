"""What every servicer method does around its body: errors to statuses, call metadata.

Servicers stay thin: convert the request, call a service, convert the answer. Anything
raised inside is mapped to a status here, so no servicer maps errors itself. A request
with a NUL character in any string is refused here too (`nul.refuse_nul`), except by
Check and CheckBulk (`hot_unary_rpc`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from authz_service import deadline
from authz_service.api.auth import current_credential_id
from authz_service.api.nul import refuse_nul
from authz_service.api.status import to_status
from authz_service.service.audit import CallInfo

__all__ = [
    "bind_deadline",
    "call_deadline",
    "call_info",
    "hot_unary_rpc",
    "stream_rpc",
    "unary_rpc",
]

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp")
Self = TypeVar("Self")


def call_info(
    context: grpc.aio.ServicerContext[Any, Any],
    default_deadline_s: float,
    *,
    actor: str | None = None,
    reason: str | None = None,
    agents: tuple[str, ...] = (),
) -> CallInfo:
    """The call's metadata; also binds its deadline to the rest of the call
    (`deadline.bind`), so that every database read and write it makes, lookup streams
    and writes included, is bounded by it."""
    return CallInfo(
        credential_id=current_credential_id(),  # the key the auth interceptor verified
        deadline=bind_deadline(context, default_deadline_s),
        actor=actor,
        reason=reason,
        agents=agents,
    )


def bind_deadline(context: grpc.aio.ServicerContext[Any, Any], default_deadline_s: float) -> float:
    """Bind the call's deadline to the rest of the call (`deadline.bind`) and return it,
    for a call that needs no `CallInfo`: a read, whose database reads (on a replica
    too, which then gets half of what is left) it bounds as those of any other call."""
    until = call_deadline(context, default_deadline_s)
    deadline.bind(until)
    return until


def call_deadline(context: grpc.aio.ServicerContext[Any, Any], default_deadline_s: float) -> float:
    """The instant the call must end by: the caller's deadline, at most the default."""
    remaining = context.time_remaining()
    budget = default_deadline_s if remaining is None else min(remaining, default_deadline_s)
    return time.monotonic() + budget


async def _abort(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException) -> None:
    # grpc-stubs predates abort_with_status on the aio context; it exists at runtime.
    await context.abort_with_status(to_status(exc))  # type: ignore[attr-defined]


UnaryMethod = Callable[[Self, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]]


def unary_rpc(method: UnaryMethod[Self, Req, Resp]) -> UnaryMethod[Self, Req, Resp]:
    @functools.wraps(method)
    async def checked(
        self: Self, request: Req, context: grpc.aio.ServicerContext[Req, Resp]
    ) -> Resp:
        refuse_nul(request)
        return await method(self, request, context)

    return hot_unary_rpc(checked)


def hot_unary_rpc(method: UnaryMethod[Self, Req, Resp]) -> UnaryMethod[Self, Req, Resp]:
    """`unary_rpc` without `refuse_nul`, for Check and CheckBulk, whose every microsecond
    counts: they store nothing, so a NUL can do no harm there (api/nul.py)."""

    @functools.wraps(method)
    async def wrapper(
        self: Self, request: Req, context: grpc.aio.ServicerContext[Req, Resp]
    ) -> Resp:
        try:
            return await method(self, request, context)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _abort(context, exc)
            raise  # unreachable: abort raises

    return wrapper


def stream_rpc(
    method: Callable[[Self, Req, grpc.aio.ServicerContext[Req, Resp]], AsyncIterator[Resp]],
) -> Callable[[Self, Req, grpc.aio.ServicerContext[Req, Resp]], AsyncIterator[Resp]]:
    @functools.wraps(method)
    async def wrapper(
        self: Self, request: Req, context: grpc.aio.ServicerContext[Req, Resp]
    ) -> AsyncIterator[Resp]:
        try:
            refuse_nul(request)
            async for item in method(self, request, context):
                yield item
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _abort(context, exc)

    return wrapper
