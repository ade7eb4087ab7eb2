"""A NUL character in any string of a request is INVALID_ARGUMENT naming the field.

PostgreSQL's `text` and `jsonb` cannot hold U+0000: such a value once reached the
database and came back as a generic INVALID_ARGUMENT with no field ("a value the
database cannot store"). Check and CheckBulk are exempt (docs/api.md): they store
nothing, and their context and reason reach only the decision log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from authz_service.api.gen.authz.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    core_pb2,
    keys_pb2,
    keys_pb2_grpc,
    permissions_pb2,
    relationships_pb2,
    schema_pb2,
    tenancy_pb2,
    tenancy_pb2_grpc,
    tenants_pb2,
    tenants_pb2_grpc,
)
from tests.api.cursor_helpers import collect, cursor_refused, refused, rehashed
from tests.api.helpers import DENIED, Api, obj, rel, subj
from tests.api.test_bad_input import field_violations

NUL = "a\x00b"
SHOWN = "a\\x00b"  # how messages quote it

SCHEMA = """
definition user {}
caveat near(place string) { place == "office" }
definition document {
    relation viewer: user | user with near
    permission view = viewer
}
"""


@dataclass
class Stubs:
    api: Api
    tenancy: tenancy_pb2_grpc.TenancyServiceStub
    tenants: tenants_pb2_grpc.TenantServiceStub
    keys: keys_pb2_grpc.KeysServiceStub
    audit: audit_pb2_grpc.AuditServiceStub


@pytest.fixture
async def stubs(channel: grpc.aio.Channel) -> Stubs:
    api = Api(channel)
    await api.write_schema(SCHEMA)
    return Stubs(
        api,
        tenancy_pb2_grpc.TenancyServiceStub(channel),
        tenants_pb2_grpc.TenantServiceStub(channel),
        keys_pb2_grpc.KeysServiceStub(channel),
        audit_pb2_grpc.AuditServiceStub(channel),
    )


def _caveated(context: dict[str, Any]) -> relationships_pb2.WriteRelationshipsRequest:
    relationship = rel("document:d#viewer@user:a")
    relationship.caveat.name = "near"
    relationship.caveat.context.update(context)
    update = relationships_pb2.RelationshipUpdate(
        operation=relationships_pb2.RelationshipUpdate.OPERATION_TOUCH, relationship=relationship
    )
    return relationships_pb2.WriteRelationshipsRequest(tenant="acme", updates=[update])


def _write(**fields: Any) -> relationships_pb2.WriteRelationshipsRequest:
    update = relationships_pb2.RelationshipUpdate(
        operation=relationships_pb2.RelationshipUpdate.OPERATION_TOUCH,
        relationship=rel("document:d#viewer@user:a"),
    )
    return relationships_pb2.WriteRelationshipsRequest(tenant="acme", updates=[update], **fields)


Call = Callable[[Stubs], Awaitable[Any]]
_T = tenancy_pb2
_CASES: list[tuple[str, Call, str]] = [
    (
        "idempotency_key",
        lambda s: s.api.relationships.WriteRelationships(_write(idempotency_key=NUL)),
        "idempotency_key",
    ),
    (
        "caveat-context-value",
        lambda s: s.api.relationships.WriteRelationships(_caveated({"place": NUL})),
        "updates[0].relationship.caveat.context.place",
    ),
    (
        "caveat-context-key",
        lambda s: s.api.relationships.WriteRelationships(_caveated({NUL: "office"})),
        f"updates[0].relationship.caveat.context.{SHOWN}",
    ),
    (
        "filter-subject-relation",
        lambda s: collect(
            s.api.relationships.ReadRelationships(
                relationships_pb2.ReadRelationshipsRequest(
                    tenant="acme",
                    filter=core_pb2.RelationshipFilter(
                        resource_type="document", subject_relation=NUL
                    ),
                )
            )
        ),
        "filter.subject_relation",
    ),
    (
        "role-description",
        lambda s: s.tenancy.CreateRole(
            _T.CreateRoleRequest(
                tenant="acme",
                role=_T.Role(
                    name="reader",
                    description=NUL,
                    permissions=[_T.RolePermission(resource_type="document", permission="view")],
                ),
            )
        ),
        "role.description",
    ),
    (
        "delete-role",
        lambda s: s.tenancy.DeleteRole(_T.DeleteRoleRequest(tenant="acme", name=NUL)),
        "name",
    ),
    (
        "delete-binding",
        lambda s: s.tenancy.DeleteBinding(_T.DeleteBindingRequest(tenant="acme", binding_id=NUL)),
        "binding_id",
    ),
    (
        "grant-reach",
        lambda s: s.tenancy.GrantReach(_T.GrantReachRequest(tenant="acme", binding_id=NUL)),
        "binding_id",
    ),
    (
        "list-bindings",
        lambda s: s.tenancy.ListBindings(_T.ListBindingsRequest(tenant="acme", role=NUL)),
        "role",
    ),
    (
        "suspend-subject",
        lambda s: s.tenancy.SuspendSubject(
            _T.SuspendSubjectRequest(tenant="acme", subject=obj("user:a"), reason=NUL)
        ),
        "reason",
    ),
    (
        "reactivate-subject",
        lambda s: s.tenancy.ReactivateSubject(
            _T.ReactivateSubjectRequest(tenant="acme", subject=obj("user:a"), reason=NUL)
        ),
        "reason",
    ),
    (
        "deprovision-subject",
        lambda s: s.tenancy.DeprovisionSubject(
            _T.DeprovisionSubjectRequest(tenant="acme", subject=obj("user:a"), reason=NUL)
        ),
        "reason",
    ),
    (
        "suspend-tenant",
        lambda s: s.tenants.SuspendTenant(
            tenants_pb2.SuspendTenantRequest(name="globex", reason=NUL)
        ),
        "reason",
    ),
    (
        "revoke-key",
        lambda s: s.keys.RevokeKey(keys_pb2.RevokeKeyRequest(tenant="acme", key_id=NUL)),
        "key_id",
    ),
    (
        "read-schema",
        lambda s: s.api.schema.ReadSchema(schema_pb2.ReadSchemaRequest(schema_version=NUL)),
        "schema_version",
    ),
    (
        "replay-decisions",
        lambda s: collect(
            s.audit.ReplayDecisions(
                audit_pb2.ReplayDecisionsRequest(tenant="acme", schema_version=NUL)
            )
        ),
        "schema_version",
    ),
]


@pytest.mark.parametrize(("call", "field"), [c[1:] for c in _CASES], ids=[c[0] for c in _CASES])
async def test_a_nul_in_a_string_is_invalid_and_named(stubs: Stubs, call: Call, field: str) -> None:
    err = await refused(call(stubs))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    details = err.details() or ""
    assert SHOWN in details, details
    assert "\x00" not in details
    assert [f for f, _ in field_violations(err)] == [field]


async def test_a_nul_in_a_long_value_is_echoed_capped(stubs: Stubs) -> None:
    request = _write(idempotency_key="\x00" + "k" * 10_000)
    err = await refused(stubs.api.relationships.WriteRelationships(request))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert "bytes)`" in (err.details() or "")
    assert len(err.details() or "") < 300


async def test_a_check_with_a_nul_in_its_context_is_still_answered(stubs: Stubs) -> None:
    reply = await stubs.api.check("acme", "document:d", "view", "user:a", context={"k": NUL})
    assert reply.decision == DENIED


async def test_a_nul_in_a_cursors_position_is_not_a_cursor_of_ours(stubs: Stubs) -> None:
    """No key or id holds a NUL, so no cursor the server issued does (api/cursors.py)."""
    first = await stubs.tenants.ListTenants(tenants_pb2.ListTenantsRequest(limit=1))
    cursor = rehashed(first.next_cursor, k=NUL)
    await cursor_refused(
        stubs.tenants.ListTenants(tenants_pb2.ListTenantsRequest(limit=1, cursor=cursor)),
        "not a cursor this service issued",
    )
    await stubs.api.touch("acme", "document:d1#viewer@user:a", "document:d2#viewer@user:a")
    lookup = permissions_pb2.LookupResourcesRequest(
        tenant="acme", resource_type="document", permission="view", subject=subj("user:a")
    )
    found = await collect(stubs.api.permissions.LookupResources(lookup))
    lookup.cursor.CopyFrom(rehashed(found[0].cursor, k=NUL))
    await cursor_refused(
        stubs.api.permissions.LookupResources(lookup), "not a cursor this service issued"
    )
