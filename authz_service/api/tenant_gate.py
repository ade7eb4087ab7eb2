"""Data calls to a tenant that does not exist are NOT_FOUND, before the servicer runs.

Every method whose request has a `tenant` field is tenant data (the auth interceptor
reads the same field for the key's tenant binding): Check and the other decisions, the
relationship calls and Watch, the tenancy calls, audit queries. `TenantGateInterceptor`
asks `TenantService.require` after the request is deserialized (and after
authentication, so a caller learns nothing of tenants its key is not bound to). Nothing
is ever created implicitly. A name that is not a valid tenant name is left to the
servicer, which refuses it with INVALID_ARGUMENT naming the field. A `fully_consistent`
request asks the registry itself; others may use a tenant found within the staleness
window (service/tenants.py). Envoy's ext_authz requests carry no tenant: the gateway's
configured tenant is checked by the gateway (api/envoy.py).

`TenantGate` is the check itself. With authentication on, the auth interceptor runs it
on the request it has just parsed and checked (api/auth.py), so a call pays for one
interceptor layer, not two; `TenantGateInterceptor` runs it when authentication is off.
A tenant found within the staleness window is admitted without an await.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc

from authz_service import deadline
from authz_service.api import convert
from authz_service.api.calls import call_deadline
from authz_service.api.status import to_status
from authz_service.errors import AuthzError, InvalidArgument
from authz_service.service.tenants import TenantService

__all__ = ["TenantGate", "TenantGateInterceptor"]

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


# Per request message type: (has a `tenant` field, has a `consistency` field).
_FIELDS: dict[type, tuple[bool, bool]] = {}


def _fields(kind: type) -> tuple[bool, bool]:
    fields = _FIELDS.get(kind)
    if fields is None:
        descriptor = getattr(kind, "DESCRIPTOR", None)
        names = descriptor.fields_by_name if descriptor is not None else {}
        fields = _FIELDS[kind] = ("tenant" in names, "consistency" in names)
    return fields


def _named_tenant(request: Any) -> tuple[str, bool] | None:
    """(tenant, fully consistent) of a tenant-data request with a well-formed tenant."""
    has_tenant, has_consistency = _fields(type(request))
    if not has_tenant:
        return None
    try:
        tenant = convert.tenant(request.tenant)
    except InvalidArgument:
        return None
    fresh = False
    if has_consistency and request.HasField("consistency"):
        fresh = request.consistency.WhichOneof("requirement") == "fully_consistent"
    return tenant, fresh


class TenantGate:
    """NOT_FOUND for a data call to a tenant that does not exist."""

    def __init__(self, tenants: TenantService, *, default_deadline_s: float) -> None:
        self._tenants = tenants
        self._deadline = default_deadline_s

    def pending(self, request: Any) -> tuple[str, bool] | None:
        """What `admit` must still ask about `request`, or None when it is admitted
        already (no tenant field, a malformed name left to the servicer, or a tenant
        found lately and a call that accepts that)."""
        named = _named_tenant(request)
        if named is None or (not named[1] and self._tenants.found_lately(named[0])):
            return None
        return named

    async def admit(self, named: tuple[str, bool], context: Context) -> None:
        """Ask the registry about `pending`'s answer; abort the call if it says no."""
        try:
            # The registry read is bounded like the call's own reads: a database that
            # does not answer ends the call within its deadline. Only this read: bound
            # to the rest of the call, it ended a Watch, which has no deadline of its own.
            with deadline.within(call_deadline(context, self._deadline)):
                await self._tenants.require(named[0], fresh=named[1])
        except AuthzError as exc:
            await context.abort_with_status(to_status(exc))  # type: ignore[attr-defined]


# Not subscripted: grpc.aio.ServerInterceptor is generic in the stubs only.
class TenantGateInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """The gate for a server without authentication."""

    def __init__(self, gate: TenantGate) -> None:
        self._gate = gate
        self._guarded: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None or (handler.unary_unary is None and handler.unary_stream is None):
            return handler  # no servicer, or a client stream (this API defines none)
        method = handler_call_details.method
        cached = self._guarded.get(method)
        if cached is None or cached[0] is not handler:
            cached = (handler, self._guard(handler))
            self._guarded[method] = cached
        return cached[1]

    async def _admit(self, request: Any, context: Context) -> None:
        named = self._gate.pending(request)
        if named is not None:
            await self._gate.admit(named, context)

    def _guard(self, handler: Handler) -> Handler:
        serializers = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        admit = self._admit
        # The stubs type behaviors for the sync server; here they are coroutines or
        # async generators taking an aio context.
        unary: Any = handler.unary_unary
        stream: Any = handler.unary_stream
        if unary is not None:

            async def guarded_unary(request: Any, context: Context) -> Any:
                await admit(request, context)
                return await unary(request, context)

            return grpc.unary_unary_rpc_method_handler(guarded_unary, **serializers)
        if inspect.isasyncgenfunction(stream):

            async def guarded_stream(request: Any, context: Context) -> AsyncIterator[Any]:
                await admit(request, context)
                responses = stream(request, context)
                try:
                    async for response in responses:
                        yield response
                finally:
                    await responses.aclose()

            return grpc.unary_stream_rpc_method_handler(guarded_stream, **serializers)

        async def guarded_writer(request: Any, context: Context) -> None:
            await admit(request, context)  # a handler that calls context.write
            await stream(request, context)

        return grpc.unary_stream_rpc_method_handler(guarded_writer, **serializers)
