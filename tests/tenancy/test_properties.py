"""Properties on random tenants (hypothesis, memory store, every service in process).

- Isolation: random data in tenants A and B drawn from the same names (ids, roles,
  groups collide on purpose). No answer in A (Check and its cached answer, CheckBulk,
  ListPermissions, LookupResources, LookupSubjects, reads, Watch changes, roles,
  bindings, reach, status) changes when B's relationships, roles, bindings and subject
  status change, and A's revision does not move.
- Cross-API agreement with bindings and lifecycle: ListPermissions, LookupResources and
  LookupSubjects say exactly what Check says.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authz_service.engine import CheckItem, Decision
from authz_service.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from authz_service.model import (
    WILDCARD,
    Consistency,
    ConsistencyMode,
    FrozenContext,
    ObjectRef,
    RelationshipFilter,
    SubjectRef,
    parse_subject,
)
from authz_service.service.relationships import is_internal
from tests.tenancy.helpers import CALL, World, world

USERS = ("u1", "u2", "u3", "u4")
GROUPS = ("g1", "g2")
FOLDERS = ("f1", "f2", "f3")
INVOICES = ("i1", "i2", "i3")
OBJECTS = [
    *(ObjectRef("folder", f) for f in FOLDERS),
    *(ObjectRef("invoice", i) for i in INVOICES),
    *(ObjectRef("group", g) for g in GROUPS),
]
PAIRS = ["invoice.pay", "invoice.view", "invoice.approve", "folder.view", "group.member"]
HOLDERS = [*(f"user:{u}" for u in USERS), "user:*", "group:g1#member", "group:g2#member"]
NO_CONTEXT = FrozenContext()

users, groups, folders, invoices = (st.sampled_from(x) for x in (USERS, GROUPS, FOLDERS, INVOICES))
relationships = st.one_of(
    st.builds("group:{}#member@user:{}".format, groups, users),
    st.builds("group:{}#member@group:{}#member".format, groups, groups),
    st.builds("folder:{}#parent@folder:{}".format, folders, folders),
    st.builds("folder:{}#viewer@user:{}".format, folders, users),
    st.builds("folder:{}#viewer@user:*".format, folders),
    st.builds("folder:{}#viewer@group:{}#member".format, folders, groups),
    st.builds("invoice:{}#folder@folder:{}".format, invoices, folders),
    st.builds("invoice:{}#owner@user:{}".format, invoices, users),
    st.builds("user:{}#support@user:{}".format, users, users),
)
scopes = st.one_of(
    st.none(),
    st.builds("folder:{}".format, folders),
    st.builds("invoice:{}".format, invoices),
    st.builds("group:{}".format, groups),
)


@dataclass
class TenantData:
    relationships: list[str]
    roles: dict[str, list[str]]
    bindings: list[tuple[str, str, str | None]]
    suspended: list[str]
    deprovisioned: list[str] = field(default_factory=list)


tenant_data = st.builds(
    TenantData,
    st.lists(relationships, max_size=12, unique=True),
    st.dictionaries(
        st.sampled_from(["r1", "r2"]),
        st.lists(st.sampled_from(PAIRS), min_size=1, max_size=3, unique=True),
        max_size=2,
    ),
    st.lists(
        st.tuples(st.sampled_from(["r1", "r2", "auditor"]), st.sampled_from(HOLDERS), scopes),
        max_size=4,
    ),
    st.lists(users, max_size=1),
    st.lists(users, max_size=1),
)


async def apply(w: World, tenant: str, data: TenantData) -> None:
    """Write `data` through the services, as a tenant admin would (refusals are fine)."""
    if data.relationships:
        await w.touch(tenant, *data.relationships)
    for name, pairs in data.roles.items():
        parsed = [tuple(p.split(".")) for p in pairs]
        try:
            await w.tenancy.create_role(tenant, name, "", parsed, CALL)  # type: ignore[arg-type]
        except AlreadyExists:
            await w.tenancy.update_role(tenant, name, "", parsed, CALL)  # type: ignore[arg-type]
    for role, holder, scope in data.bindings:
        target = ObjectRef(*scope.split(":")) if scope else None
        # refused: an unknown role, nothing on that scope, a cycle, a duplicate
        with contextlib.suppress(InvalidArgument, AlreadyExists, FailedPrecondition):
            await w.tenancy.create_binding(tenant, role, parse_subject(holder), target, CALL)
    for user in data.suspended:
        await w.lifecycle.suspend(tenant, ObjectRef("user", user), "", CALL)
    for user in data.deprovisioned:
        await w.lifecycle.deprovision(tenant, ObjectRef("user", user), "", CALL)


def members(w: World, type_name: str) -> list[str]:
    return [p.name for p in w.schemas.current.definitions[type_name].permissions]


async def observe(w: World, tenant: str, revision: int) -> dict[str, Any]:
    """Every answer tenant `tenant` gives at `revision`."""
    at = Consistency(ConsistencyMode.AT_EXACT_SNAPSHOT, revision)
    seen: dict[str, Any] = {}
    subjects = [SubjectRef("user", u) for u in USERS]
    items = []
    for obj in OBJECTS:
        for name in members(w, obj.type):
            for subject in subjects:
                items.append(CheckItem(obj, name, subject))
    for it in items:
        first = await w.permissions.check(tenant, it, at, CALL)
        cached = await w.permissions.check(tenant, it, at, CALL)
        assert cached.cache_hit or not first.result.cacheable
        assert cached.result.decision is first.result.decision
        key = f"check {it.resource}#{it.permission}@{it.subject}"
        seen[key] = (first.result.decision, first.result.missing_context)
    _, bulk, _ = await w.permissions.check_bulk(tenant, items, at, CALL)
    seen["bulk"] = [getattr(r, "decision", repr(r)) for r in bulk]
    for obj in OBJECTS:
        for subject in subjects:
            listed = await w.permissions.list_permissions(
                tenant, obj, subject, NO_CONTEXT, at, CALL
            )
            for name, result in listed.permissions:
                seen[f"list {obj}#{name}@{subject}"] = result.decision
    for type_name in ("folder", "invoice", "group"):
        for name in members(w, type_name):
            for subject in subjects:
                _, stream = await w.permissions.lookup_resources(
                    tenant, type_name, name, subject, NO_CONTEXT, at, CALL
                )
                seen[f"resources {type_name}#{name}@{subject}"] = [
                    (r.resource_id, r.decision) async for r in stream
                ]
    for obj in OBJECTS:
        for name in members(w, obj.type):
            _, found = await w.permissions.lookup_subjects(
                tenant, obj, name, "user", "", NO_CONTEXT, at, CALL
            )
            seen[f"subjects {obj}#{name}"] = [
                (s.subject_id, s.decision, s.excluded_subject_ids) async for s in found
            ]
    stored = await w.store.read(tenant, revision, RelationshipFilter())
    seen["read"] = [str(r) for r in stored if not is_internal(r)]
    seen["watch"] = [
        (c.revision, c.op, str(c.relationship))
        for c in await w.store.changes(tenant, 0, limit=100_000)
        if not is_internal(c.relationship)
    ]
    seen["roles"] = (await w.tenancy.list_roles(tenant, at, 0, None)).items
    bindings = await w.tenancy.list_bindings(
        tenant, subject=None, role="", resource=None, consistency=at, limit=0, after=None
    )
    seen["bindings"] = bindings.items
    for b in bindings.items:
        seen[f"reach {b.binding_id}"] = (
            await w.tenancy.grant_reach(tenant, b.binding_id, at, 0, None)
        ).resources
    for user in USERS:
        seen[f"status {user}"] = await w.lifecycle.status(tenant, ObjectRef("user", user), at)
    seen["named"] = {
        o
        for r in await w.store.read(tenant, revision, RelationshipFilter())
        for o in (r.resource, r.subject.object)
        if o.id != WILDCARD
    }
    return seen


def agreement(seen: dict[str, Any]) -> None:
    """ListPermissions, LookupResources and LookupSubjects agree with Check."""
    checks = {k[len("check ") :]: v for k, v in seen.items() if k.startswith("check ")}
    for key, (decision, _) in checks.items():
        resource, _, rest = key.partition("#")
        name, _, subject = rest.partition("@")
        listed = seen[f"list {resource}#{name}@{subject}"]
        assert listed is decision, ("list", key, listed, decision)
        kind, _, ident = resource.partition(":")
        found = dict(seen[f"resources {kind}#{name}@{subject}"])
        if ObjectRef(kind, ident) in seen["named"]:
            assert found.get(ident, Decision.DENIED) is decision, ("resources", key, found)
        else:  # a resource named nowhere is listed only if allowed (tenant-wide bindings)
            assert ident not in found or found[ident] is decision, ("resources", key, found)
        by_subject = {s: (d, excluded) for s, d, excluded in seen[f"subjects {resource}#{name}"]}
        user = subject.partition(":")[2]
        if user in by_subject:
            got = by_subject[user][0]
        elif WILDCARD in by_subject and user not in by_subject[WILDCARD][1]:
            got = by_subject[WILDCARD][0]
        else:
            got = Decision.DENIED
        assert got is decision, ("subjects", key, by_subject, decision)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=tenant_data, b=tenant_data, b_later=tenant_data)
async def test_tenants_are_isolated_and_apis_agree(
    a: TenantData, b: TenantData, b_later: TenantData
) -> None:
    w = await world()
    await apply(w, "tenant_a", a)
    await apply(w, "tenant_b", b)
    head = await w.store.head_revision("tenant_a")
    before = await observe(w, "tenant_a", head)
    agreement(before)
    await apply(w, "tenant_b", b_later)
    if b.roles:  # B deletes its roles too (with their bindings)
        for name in b.roles:
            await w.tenancy.delete_role("tenant_b", name, True, CALL)
    assert await w.store.head_revision("tenant_a") == head
    after = await observe(w, "tenant_a", head)
    assert after == before
    agreement(await observe(w, "tenant_b", await w.store.head_revision("tenant_b")))
