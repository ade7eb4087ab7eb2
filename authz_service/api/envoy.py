"""Envoy external authorization: `envoy.service.auth.v3.Authorization/Check`.

Envoy's `ext_authz` filter asks this servicer about every HTTP request. The gateway
configuration (`authz_service.gateway`) maps the request to a Check that runs through the
same `PermissionService.check` as the gRPC API, so it is cached, counted and written to
the decision log identically. This module only converts: `CheckRequest` -> `HttpRequest`,
`Reply` -> `CheckResponse`.

It never answers with a gRPC error: a failure is a denial in the response itself, so the
request stays blocked whatever Envoy's `failure_mode_allow` says. That covers the calls
refused before the servicer runs too: the auth interceptor answers them with `refused`
(its `answers`, api/auth.py), the drain of a server shutting down with `unavailable`
(api/drain.py), and a body that does not decode reaches the servicer as an
`Undecodable`, which it denies. Only what grpc refuses before any handler (its
concurrency cap, a message over the size limit) is still a status: docs/gateway.md.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2

from authz_service.api import convert
from authz_service.api.calls import call_info
from authz_service.api.decoding import Undecodable, decode, never_raises
from authz_service.engine import CheckItem, Decision
from authz_service.gateway import Gateway, HttpRequest, Reply
from authz_service.model import Consistency
from authz_service.service.permissions import PermissionService
from authz_service.service.tenants import TenantService

__all__ = ["ENVOY_CHECK_METHOD", "ENVOY_SERVICE_NAME", "EnvoyAuthServicer", "add_envoy_servicer"]

log = logging.getLogger(__name__)

ENVOY_SERVICE_NAME: str = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name
ENVOY_CHECK_METHOD: str = f"/{ENVOY_SERVICE_NAME}/Check"

_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_RPC_CODES = {401: code_pb2.UNAUTHENTICATED, 503: code_pb2.UNAVAILABLE}
# What is known of a request refused before it was parsed: nothing.
_UNPARSED = HttpRequest(method="", path="", headers={})


@never_raises
def _check_request(data: bytes) -> Any:
    """The request deserializer: a body that does not decode becomes an `Undecodable`
    that the servicer denies, never the INVALID_ARGUMENT status of the other methods."""
    return decode(external_auth_pb2.CheckRequest.FromString, data)


def http_request(request: Any) -> HttpRequest:
    http = request.attributes.request.http
    headers = {k.lower(): v for k, v in http.headers.items()}
    return HttpRequest(
        method=http.method,
        path=http.path,
        headers=headers,
        # x-request-id is what Envoy's access log and the upstream see; `id` is internal.
        request_id=headers.get("x-request-id") or http.id,
    )


def check_response(reply: Reply) -> Any:
    def options(headers: tuple[tuple[str, str], ...]) -> list[Any]:
        return [
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=k, value=v), append_action=_OVERWRITE
            )
            for k, v in headers
        ]

    if reply.allowed:
        return external_auth_pb2.CheckResponse(
            status=status_pb2.Status(code=code_pb2.OK),
            ok_response=external_auth_pb2.OkHttpResponse(
                headers=options(reply.headers), headers_to_remove=list(reply.remove_headers)
            ),
        )
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=_RPC_CODES.get(reply.status, code_pb2.PERMISSION_DENIED)),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=reply.status),
            headers=options(reply.headers),
            body=reply.body,
        ),
    )


class EnvoyAuthServicer(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    """Answers Envoy's ext_authz Check: OK with upstream headers, or a denied HTTP response."""

    def __init__(
        self,
        gateway: Gateway,
        permissions: PermissionService,
        *,
        default_deadline_s: float,
        tenants: TenantService | None = None,
    ) -> None:
        """`tenants`: the registry a mapped tenant must exist in (an unknown one denies)."""
        self._gateway = gateway
        self._permissions = permissions
        self._deadline = default_deadline_s
        self._tenants = tenants

    def refused(self) -> Any:
        """The answer to a call refused before this servicer ran (bad key, backoff, key
        store down, ...): the denial of any failure. The refusal's reason stays in the
        server's log; the body is not parsed for it, so it names no request id."""
        return check_response(self._gateway.error(_UNPARSED))

    def unavailable(self) -> Any:
        """The answer to a call the server refuses while it shuts down (api/drain.py): a
        denial, 503, for Envoy to pass on; the request is not read."""
        return check_response(self._gateway.unavailable(_UNPARSED))

    async def Check(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        http = _UNPARSED
        if isinstance(request, Undecodable):  # reaches here only without authentication
            log.info("envoy check with an undecodable body (%s); denying", request.cause)
            return self.refused()
        try:
            http = http_request(request)
            call = call_info(context, self._deadline)

            async def check(tenant: str, item: CheckItem) -> tuple[Decision, str]:
                name = convert.tenant(tenant)
                if self._tenants is not None:
                    await self._tenants.require(name)  # NotFound: denied below
                outcome = await self._permissions.check(name, item, Consistency(), call)
                return outcome.result.decision, outcome.decision_id

            reply = await self._gateway.handle(http, check)
        except Exception:  # fail closed: never let a failure become a gRPC error or an OK
            log.exception("envoy check failed; denying")
            reply = self._gateway.error(http)
        return check_response(reply)


def add_envoy_servicer(servicer: EnvoyAuthServicer, server: grpc.aio.Server) -> None:
    """Registered by hand rather than with the generated function, for the deserializer
    that never raises."""
    check = grpc.unary_unary_rpc_method_handler(
        servicer.Check,
        request_deserializer=_check_request,
        response_serializer=external_auth_pb2.CheckResponse.SerializeToString,
    )
    handlers = grpc.method_handlers_generic_handler(ENVOY_SERVICE_NAME, {"Check": check})
    server.add_generic_rpc_handlers((handlers,))
