"""The Envoy servicer's conversions, and that it answers failures with a denial, not an error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2
from google.rpc import code_pb2

from authz_service.api.envoy import EnvoyAuthServicer, check_response, http_request
from authz_service.gateway import Gateway, Reply, parse_gateway_config
from authz_service.revisions import RevisionResolver
from authz_service.service.audit import AuditTrail
from authz_service.service.schemas import SchemaManager
from authz_service.service.tenants import TenantService
from authz_service.store.memory import MemoryStore
from tests.gateway.issuer import Issuer, gateway_yaml, write_jwks


def envoy_request(method: str, path: str, headers: dict[str, str]) -> Any:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.path, http.id = method, path, "r-1"
    http.headers.update(headers)
    return request


def test_http_request_conversion() -> None:
    converted = http_request(envoy_request("PUT", "/v1/docs/a?x=1", {"Authorization": "Bearer t"}))
    assert (converted.method, converted.path, converted.request_id) == (
        "PUT",
        "/v1/docs/a?x=1",
        "r-1",
    )
    assert converted.headers == {"authorization": "Bearer t"}


def test_allowed_response_overwrites_and_removes_headers() -> None:
    response = check_response(
        Reply(allowed=True, headers=(("x-authz-subject", "user:a"),), remove_headers=("x-b",))
    )
    assert response.status.code == code_pb2.OK
    [option] = response.ok_response.headers
    assert (option.header.key, option.header.value) == ("x-authz-subject", "user:a")
    assert option.append_action == base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    assert list(response.ok_response.headers_to_remove) == ["x-b"]


def test_denied_and_unauthenticated_responses() -> None:
    denied = check_response(
        Reply(allowed=False, status=403, headers=(("content-type", "application/json"),), body="{}")
    )
    assert denied.status.code == code_pb2.PERMISSION_DENIED
    assert denied.denied_response.status.code == 403
    assert denied.denied_response.body == "{}"
    assert not denied.HasField("ok_response")
    unauthenticated = check_response(Reply(allowed=False, status=401))
    assert unauthenticated.status.code == code_pb2.UNAUTHENTICATED
    assert unauthenticated.denied_response.status.code == 401


class BrokenPermissions:
    async def check(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database on fire")


class Context:
    def time_remaining(self) -> float:
        return 1.0


async def test_servicer_denies_on_any_failure(tmp_path: Path) -> None:
    issuer = Issuer("EdDSA")
    config = parse_gateway_config(
        yaml.safe_load(gateway_yaml(write_jwks(tmp_path / "j.json", issuer)))
    )
    servicer = EnvoyAuthServicer(
        Gateway(config),
        BrokenPermissions(),  # type: ignore[arg-type]
        default_deadline_s=1.0,
    )
    request = envoy_request("GET", "/v1/docs/a", {"authorization": f"Bearer {issuer.token()}"})
    response = await servicer.Check(request, Context())  # type: ignore[arg-type]
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert response.denied_response.status.code == 403
    assert json.loads(response.denied_response.body)["decision"] == "DENIED"
    broken = await servicer.Check(object(), Context())  # type: ignore[arg-type]
    assert broken.denied_response.status.code == 403


class RecordingPermissions:
    """Records the tenants it is asked about (then fails, which the servicer denies)."""

    def __init__(self) -> None:
        self.tenants: list[str] = []

    async def check(self, tenant: str, *args: Any, **kwargs: Any) -> Any:
        self.tenants.append(tenant)
        raise RuntimeError("stop here: the servicer denies")


async def test_a_route_to_an_unknown_tenant_is_denied(tmp_path: Path) -> None:
    issuer = Issuer("EdDSA")
    config = parse_gateway_config(
        yaml.safe_load(gateway_yaml(write_jwks(tmp_path / "j.json", issuer)))
    )
    store = MemoryStore()  # no tenant registered: the token's tenant does not exist
    permissions = RecordingPermissions()
    servicer = EnvoyAuthServicer(
        Gateway(config),
        permissions,  # type: ignore[arg-type]
        default_deadline_s=1.0,
        tenants=TenantService(
            registry=store.tenants,
            store=store,
            schemas=SchemaManager(store),
            resolver=RevisionResolver(store),
            audit=AuditTrail(None),
        ),
    )
    request = envoy_request("GET", "/v1/docs/a", {"authorization": f"Bearer {issuer.token()}"})
    response = await servicer.Check(request, Context())  # type: ignore[arg-type]
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert response.denied_response.status.code == 403
    assert permissions.tenants == []
    # Control: once the tenant exists, the same request reaches the check.
    await store.tenants.create("acme")
    await servicer.Check(request, Context())  # type: ignore[arg-type]
    assert permissions.tenants == ["acme"]
