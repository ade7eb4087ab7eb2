"""The method names the service layer records and binds cursors to are real methods."""

from __future__ import annotations

from authz_service.api.gen.authz.v1 import (
    audit_pb2,
    keys_pb2,
    permissions_pb2,
    relationships_pb2,
    schema_pb2,
    service_accounts_pb2,
    tenancy_pb2,
    tenants_pb2,
)
from authz_service.service import methods


def test_every_name_is_a_method_of_the_api() -> None:
    real = {
        f"/{service.full_name}/{method.name}"
        for module in (
            audit_pb2,
            keys_pb2,
            permissions_pb2,
            relationships_pb2,
            schema_pb2,
            service_accounts_pb2,
            tenancy_pb2,
            tenants_pb2,
        )
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    named = {getattr(methods, name) for name in methods.__all__}
    assert len(named) == len(methods.__all__)
    assert named <= real
