"""The generated protobuf and gRPC modules this client is built on.

They are the stubs the server package generates from `proto/` (`scripts/gen_protos.py`
into `authz_service.api.gen`), imported from one place. Sharing them, rather than
generating a second copy, keeps one descriptor set per process and nothing that can drift
from the server's API. See clients/README.md for the trade-off.
"""

from __future__ import annotations

try:
    from authz_service.api.gen.authz.v1 import (
        audit_pb2,
        audit_pb2_grpc,
        core_pb2,
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
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "authz_client needs the API stubs of the authz-service package: from the repository "
        "root run `pip install -e . && python scripts/gen_protos.py` "
        f"(original error: {exc})"
    ) from exc

__all__ = [
    "audit_pb2",
    "audit_pb2_grpc",
    "core_pb2",
    "keys_pb2",
    "keys_pb2_grpc",
    "permissions_pb2",
    "permissions_pb2_grpc",
    "relationships_pb2",
    "relationships_pb2_grpc",
    "schema_pb2",
    "schema_pb2_grpc",
    "service_accounts_pb2",
    "service_accounts_pb2_grpc",
    "tenancy_pb2",
    "tenancy_pb2_grpc",
    "tenants_pb2",
    "tenants_pb2_grpc",
]
