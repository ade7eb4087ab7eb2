"""Draining calls before grpc shuts the server down.

grpc's shutdown (`server.stop(grace)`) lets the calls it has handed to Python finish,
but it ends CANCELLED every call it has received and not yet handed over, and every call
that arrives after it began (the core's `ShutdownAndNotify` zombifies its queue of
pending calls). grpc.aio asks the core for the next call only when its event loop gets
round to it, so under load such a queue is always there: SIGTERM under load used to
cancel calls sent well before it, writes included, and CANCELLED tells a caller nothing
about whether a write was applied.

So `App.stop` first drains here, with health already saying NOT_SERVING and the server
still taking calls:

1. It serves as usual until no call has started for `SERVING_QUIET_S`. By then the
   core has handed over every call it held, and callers that watch health have gone.
2. If calls keep coming for half the time allowed, it answers each new call UNAVAILABLE
   (safe to retry; a write is not applied) until none starts for `REFUSING_QUIET_S` or
   the other half runs out. Refusing takes little time, so the core's queue empties
   between callers' retries, and grpc shuts down in such a gap. Measured with 40
   callers that retry 50 ms after each refusal: waiting for the longer spell here
   ended the drain in the middle of a burst of retries in 2 runs of 8, and grpc
   cancelled up to 20 of them; with the shorter one, in none of 6.

A method in `answers` (Envoy's ext_authz Check, api/envoy.py) is not refused with a
status but answered with what its entry makes: an Envoy configured with
`failure_mode_allow: true` would let the request through on UNAVAILABLE, so the Check is
answered with a denial saying the service is shutting down.

Health checks are always served (they answer NOT_SERVING). Calls still running when the
drain ends finish within what is left of the grace, in `server.stop`. A call that
reaches the core in the instant grpc shuts down, before its caller has read the GOAWAY,
can still end CANCELLED: grpc offers no way to refuse it otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias

import grpc

__all__ = ["Drain"]

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]

# How long no call may start before the core is taken to hold none: far above the few
# loop turns it takes to hand a queued call over, while calls are served or refused.
SERVING_QUIET_S = 0.05
REFUSING_QUIET_S = 0.01

_HEALTH = "/grpc.health.v1.Health/"
_MESSAGE = "the server is shutting down; retry the call"


async def _refuse(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await context.abort(grpc.StatusCode.UNAVAILABLE, _MESSAGE)


# One refusing handler per kind of method, by (request streaming, response streaming).
# Without deserializers: the request is never read.
_REFUSALS: dict[tuple[bool, bool], Handler] = {
    (False, False): grpc.unary_unary_rpc_method_handler(_refuse),
    (False, True): grpc.unary_stream_rpc_method_handler(_refuse),
    (True, False): grpc.stream_unary_rpc_method_handler(_refuse),
    (True, True): grpc.stream_stream_rpc_method_handler(_refuse),
}


def _answering(answer: Callable[[], Any], handler: Handler) -> Handler:
    """A unary handler answering `answer()`; the request is never read."""

    async def answered(_request: Any, _context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        return answer()

    return grpc.unary_unary_rpc_method_handler(
        answered, response_serializer=handler.response_serializer
    )


# Not subscripted: grpc.aio.ServerInterceptor is generic in the stubs only.
class Drain(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Counts the calls that start; refuses them once `until_quiet` says so."""

    def __init__(self, answers: Mapping[str, Callable[[], Any]] | None = None) -> None:
        """`answers`: unary methods refused with the response their entry makes (full
        method name -> function), instead of UNAVAILABLE."""
        self._started = 0
        self._refusing = False
        self._answers = dict(answers or {})

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        self._started += 1
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if not self._refusing or handler is None or method.startswith(_HEALTH):
            return handler
        answer = self._answers.get(method)
        if answer is not None and not handler.request_streaming and not handler.response_streaming:
            return _answering(answer, handler)
        return _REFUSALS[(handler.request_streaming, handler.response_streaming)]

    async def until_quiet(self, within: float) -> None:
        """Serve until calls stop coming, then refuse them until they stop again:
        `within` seconds at most, half for each."""
        if not await self._quiet(within / 2, SERVING_QUIET_S):
            self._refusing = True
            await self._quiet(within / 2, REFUSING_QUIET_S)

    async def _quiet(self, within: float, spell: float) -> bool:
        """Whether a spell of `spell` s without a new call comes within `within` s."""
        loop = asyncio.get_running_loop()
        end = loop.time() + within
        while (start := loop.time()) + spell <= end:
            seen = self._started
            await asyncio.sleep(spell)
            # A spell the loop woke from late does not count: calls may be waiting
            # behind whatever held it up.
            if self._started == seen and loop.time() - start < 2 * spell:
                return True
        return False
