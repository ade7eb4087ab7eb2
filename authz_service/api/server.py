"""Building the grpc.aio server: servicers, health, reflection, limits, port reuse."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from authz_service.api.audit import AuditServicer
from authz_service.api.envoy import ENVOY_SERVICE_NAME, EnvoyAuthServicer, add_envoy_servicer
from authz_service.api.gen.authz.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
    permissions_pb2,
    permissions_pb2_grpc,
    relationships_pb2,
    relationships_pb2_grpc,
    schema_pb2,
    schema_pb2_grpc,
    service_accounts_pb2,
    service_accounts_pb2_grpc,
    tenancy_pb2,
    tenancy_pb2_grpc,
    tenants_pb2,
    tenants_pb2_grpc,
)
from authz_service.api.keys import KeysServicer
from authz_service.api.permissions import PermissionsServicer
from authz_service.api.relationships import RelationshipsServicer
from authz_service.api.schema import SchemaServicer
from authz_service.api.service_accounts import ServiceAccountsServicer
from authz_service.api.tenancy import TenancyServicer
from authz_service.api.tenants import TenantServicer

__all__ = ["SERVICE_NAMES", "GenericOnly", "build_server"]

SERVICE_NAMES: tuple[str, ...] = (
    permissions_pb2.DESCRIPTOR.services_by_name["PermissionsService"].full_name,
    relationships_pb2.DESCRIPTOR.services_by_name["RelationshipsService"].full_name,
    schema_pb2.DESCRIPTOR.services_by_name["SchemaService"].full_name,
    audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
    tenancy_pb2.DESCRIPTOR.services_by_name["TenancyService"].full_name,
    tenants_pb2.DESCRIPTOR.services_by_name["TenantService"].full_name,
    keys_pb2.DESCRIPTOR.services_by_name["KeysService"].full_name,
    service_accounts_pb2.DESCRIPTOR.services_by_name["ServiceAccountsService"].full_name,
)


class GenericOnly:
    """The server as the generated `add_*Servicer_to_server` functions see it, taking
    their generic handlers and leaving out their registered ones.

    grpc.aio keeps one pending request per registered method and waits on all of them
    for every call: with the service's 54 methods that was about a quarter of the
    instructions of a cache-hit Check (callgrind; docs/performance.md, "Generic
    handlers"). A generic handler finds the method with a dictionary lookup per service
    instead. The generated code registers both, with the same handlers, so the calls
    served are the same."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(
        self, handlers: Sequence[grpc.GenericRpcHandler[Any, Any]]
    ) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        """Left out on purpose: see the class."""


def build_server(
    *,
    permissions: PermissionsServicer,
    relationships: RelationshipsServicer,
    schema: SchemaServicer,
    audit: AuditServicer,
    max_concurrent_rpcs: int,
    reuse_port: bool,
    interceptors: Sequence[grpc.aio.ServerInterceptor[Any, Any]] = (),
    envoy: EnvoyAuthServicer | None = None,
    tenancy: TenancyServicer | None = None,
    tenants: TenantServicer | None = None,
    keys: KeysServicer | None = None,
    service_accounts: ServiceAccountsServicer | None = None,
) -> tuple[grpc.aio.Server, Any]:
    """A server with every service registered but no port bound yet.

    `maximum_concurrent_rpcs` makes grpc answer RESOURCE_EXHAUSTED past the cap instead
    of queueing without bound and shedding calls silently under overload.
    """
    server = grpc.aio.server(
        interceptors=list(interceptors),
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=[
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ],
    )
    generic: Any = GenericOnly(server)  # the generated functions take it as a server
    permissions_pb2_grpc.add_PermissionsServiceServicer_to_server(permissions, generic)
    relationships_pb2_grpc.add_RelationshipsServiceServicer_to_server(relationships, generic)
    schema_pb2_grpc.add_SchemaServiceServicer_to_server(schema, generic)
    audit_pb2_grpc.add_AuditServiceServicer_to_server(audit, generic)
    if tenancy is not None:
        tenancy_pb2_grpc.add_TenancyServiceServicer_to_server(tenancy, generic)
    if tenants is not None:
        tenants_pb2_grpc.add_TenantServiceServicer_to_server(tenants, generic)
    if keys is not None:
        keys_pb2_grpc.add_KeysServiceServicer_to_server(keys, generic)
    if service_accounts is not None:
        service_accounts_pb2_grpc.add_ServiceAccountsServiceServicer_to_server(
            service_accounts, generic
        )
    if envoy is not None:  # only with a gateway config: it says how to map requests
        add_envoy_servicer(envoy, generic)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, generic)
    reflection.enable_server_reflection(
        (
            *SERVICE_NAMES,
            *((ENVOY_SERVICE_NAME,) if envoy is not None else ()),
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        generic,
    )
    return server, health_servicer
