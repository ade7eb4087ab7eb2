"""Envoy external authorization: `envoy.service.auth.v3.Authorization/Check`.

Envoy's `ext_authz` filter asks this servicer about every HTTP request. The gateway
configuration (`authz_service.gateway`) maps the request to a Check that runs through the
same `PermissionService.check` as the gRPC API, so it is cached, counted and written to
the decision log identically. This module only converts: `CheckRequest` -> `HttpRequest`,
`Reply` -> `CheckResponse`.

It never answers with a gRPC error: a failure is a denial in the response itself, so the
request stays blocked whatever Envoy's `failure_mode_allow` says.
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
from authz_service.engine import CheckItem, Decision
from authz_service.gateway import Gateway, HttpRequest, Reply
from authz_service.model import Consistency
from authz_service.service.permissions import PermissionService
from authz_service.service.tenants import TenantService

__all__ = ["ENVOY_SERVICE_NAME", "EnvoyAuthServicer", "add_envoy_servicer"]

log = logging.getLogger(__name__)

ENVOY_SERVICE_NAME: str = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name

_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_RPC_CODES = {401: code_pb2.UNAUTHENTICATED}


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

    async def Check(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        http = HttpRequest(method="", path="", headers={})
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
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(servicer, server)
