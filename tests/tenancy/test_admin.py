"""Roles and bindings through the tenancy service (memory store): validation, atomicity,
cycles, listings. Bad input gets a clear error and writes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest

from authz_service.engine import Decision
from authz_service.errors import (
    AlreadyExists,
    AuthzError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from authz_service.model import (
    Consistency,
    ConsistencyMode,
    ObjectRef,
    RelationshipFilter,
    SubjectRef,
    parse_subject,
)
from authz_service.revisions import RevisionResolver
from authz_service.service.audit import AuditTrail
from authz_service.service.relationships import RelationshipService
from authz_service.tenancy.encoding import BINDING, ROLE
from tests.tenancy.helpers import CALL, SCHEMA, World, world

T = "acme"
LATEST = Consistency()
BILLING = [("invoice", "pay"), ("invoice", "view")]


def obj(text: str) -> ObjectRef:
    kind, _, ident = text.partition(":")
    return ObjectRef(kind, ident)


async def refused(w: World, call: Awaitable[object], error: type[AuthzError]) -> AuthzError:
    """`call` fails with `error` and the tenant's head does not move."""
    head = await w.store.head_revision(T)
    with pytest.raises(error) as caught:
        await call
    assert await w.store.head_revision(T) == head
    return caught.value


async def test_a_role_naming_an_unknown_permission_is_refused_naming_the_field() -> None:
    w = await world()
    await w.tenancy.create_role(T, "ok", "", BILLING, CALL)
    error = await refused(
        w,
        w.tenancy.create_role(T, "bad", "", [("invoice", "pay"), ("invoice", "refund")], CALL),
        InvalidArgument,
    )
    assert isinstance(error, InvalidArgument)
    assert (error.field, error.value) == ("role.permissions[1]", "invoice.refund")
    error = await refused(
        w, w.tenancy.create_role(T, "bad", "", [("receipt", "pay")], CALL), InvalidArgument
    )
    assert isinstance(error, InvalidArgument)
    assert error.field == "role.permissions[0]"
    await refused(w, w.tenancy.create_role(T, "Bad Name", "", BILLING, CALL), InvalidArgument)
    await refused(
        w,
        w.tenancy.create_role(T, "dup", "", [*BILLING, ("invoice", "pay")], CALL),
        InvalidArgument,
    )
    await refused(w, w.tenancy.update_role(T, "ok", "", [("nope", "x")], CALL), InvalidArgument)


async def test_role_names_are_unique_among_built_in_and_custom_roles() -> None:
    w = await world()
    await w.tenancy.create_role(T, "billing", "", BILLING, CALL)
    await refused(w, w.tenancy.create_role(T, "billing", "", BILLING, CALL), AlreadyExists)
    await refused(w, w.tenancy.create_role(T, "auditor", "", BILLING, CALL), AlreadyExists)
    await refused(w, w.tenancy.update_role(T, "auditor", "", BILLING, CALL), FailedPrecondition)
    await refused(w, w.tenancy.update_role(T, "missing", "", BILLING, CALL), NotFound)
    await refused(w, w.tenancy.delete_role(T, "auditor", False, CALL), FailedPrecondition)
    await refused(w, w.tenancy.delete_role(T, "missing", False, CALL), NotFound)
    # the same name in another tenant is another role
    await w.tenancy.create_role("globex", "billing", "", [("folder", "view")], CALL)


async def test_binding_to_an_unknown_role_or_type_is_refused() -> None:
    w = await world()
    user = SubjectRef("user", "ann")
    error = await refused(
        w, w.tenancy.create_binding(T, "ghost", user, obj("folder:x"), CALL), InvalidArgument
    )
    assert isinstance(error, InvalidArgument)
    assert error.field == "binding.role"
    await refused(
        w,
        w.tenancy.create_binding(T, "auditor", SubjectRef("robot", "r"), None, CALL),
        InvalidArgument,
    )
    await refused(
        w,
        w.tenancy.create_binding(T, "auditor", SubjectRef("group", "g", "nope"), None, CALL),
        InvalidArgument,
    )
    await refused(
        w, w.tenancy.create_binding(T, "auditor", user, obj("robot:x"), CALL), InvalidArgument
    )
    # auditor names invoice and folder permissions: nothing on a user or below it
    await refused(
        w, w.tenancy.create_binding(T, "auditor", user, obj("user:bob"), CALL), InvalidArgument
    )
    # a role of another tenant is unknown here
    await w.tenancy.create_role("globex", "billing", "", BILLING, CALL)
    await refused(w, w.tenancy.create_binding(T, "billing", user, None, CALL), InvalidArgument)


async def test_identical_bindings_are_refused() -> None:
    w = await world()
    user = SubjectRef("user", "ann")
    first, _ = await w.tenancy.create_binding(T, "auditor", user, obj("folder:x"), CALL)
    error = await refused(
        w, w.tenancy.create_binding(T, "auditor", user, obj("folder:x"), CALL), AlreadyExists
    )
    assert first.binding_id in error.message
    await w.tenancy.create_binding(T, "auditor", user, None, CALL)  # another scope: fine


async def test_a_cycle_of_bindings_is_refused() -> None:
    w = await world()
    member = [("group", "member")]
    await w.tenancy.create_role(T, "member-of", "", member, CALL)
    eng = SubjectRef("group", "eng", "member")
    # a role granting membership in its own subject set
    error = await refused(
        w, w.tenancy.create_binding(T, "member-of", eng, obj("group:eng"), CALL), InvalidArgument
    )
    assert "cycle" in error.message
    await refused(w, w.tenancy.create_binding(T, "member-of", eng, None, CALL), InvalidArgument)
    # through another binding: ops members are eng members; eng members would be ops members
    await w.tenancy.create_binding(
        T, "member-of", SubjectRef("group", "ops", "member"), obj("group:eng"), CALL
    )
    error = await refused(
        w, w.tenancy.create_binding(T, "member-of", eng, obj("group:ops"), CALL), InvalidArgument
    )
    assert "`group:ops#member`" in error.message
    # the same chain without a loop is fine
    await w.tenancy.create_binding(T, "member-of", eng, obj("group:sales"), CALL)


async def test_updating_a_role_changes_what_its_bindings_grant() -> None:
    w = await world()
    await w.touch(T, "invoice:i#folder@folder:f")
    await w.tenancy.create_role(T, "billing", "pays", [("invoice", "pay")], CALL)
    await w.tenancy.create_binding(T, "billing", SubjectRef("user", "ann"), obj("folder:f"), CALL)
    assert (await w.check(T, "invoice:i#pay@user:ann")).decision is Decision.ALLOWED
    assert (await w.check(T, "invoice:i#view@user:ann")).decision is Decision.DENIED
    view, _ = await w.tenancy.update_role(T, "billing", "views", [("invoice", "view")], CALL)
    assert (view.description, view.permissions) == ("views", (("invoice", "view"),))
    assert (await w.check(T, "invoice:i#pay@user:ann")).decision is Decision.DENIED
    assert (await w.check(T, "invoice:i#view@user:ann")).decision is Decision.ALLOWED


async def test_deleting_a_role_refuses_while_bound_unless_cascading() -> None:
    w = await world()
    await w.touch(T, "invoice:i#folder@folder:f")
    await w.tenancy.create_role(T, "billing", "", BILLING, CALL)
    for user in ("ann", "bob"):
        await w.tenancy.create_binding(
            T, "billing", SubjectRef("user", user), obj("folder:f"), CALL
        )
    await refused(w, w.tenancy.delete_role(T, "billing", False, CALL), FailedPrecondition)
    _, count = await w.tenancy.delete_role(T, "billing", True, CALL)
    assert count == 2
    assert (await w.check(T, "invoice:i#pay@user:ann")).decision is Decision.DENIED
    page = await w.tenancy.list_bindings(
        T, subject=None, role="", resource=None, consistency=LATEST, limit=0, after=None
    )
    assert page.items == []
    roles = await w.tenancy.list_roles(T, LATEST, 0, None)
    assert [r.name for r in roles.items] == ["auditor"]


async def test_listings_filter_and_page_at_one_revision() -> None:
    w = await world()
    await w.tenancy.create_role(T, "billing", "", BILLING, CALL)
    await w.tenancy.create_role(T, "zeta", "", [("folder", "view")], CALL)
    made = []
    for user in ("ann", "bob", "cat"):
        for role in ("billing", "auditor"):
            b, _ = await w.tenancy.create_binding(
                T, role, SubjectRef("user", user), obj("folder:f"), CALL
            )
            made.append(b)
    await w.tenancy.create_binding(T, "auditor", parse_subject("group:g#member"), None, CALL)

    async def ids(**kw: object) -> list[str]:
        args: dict[str, object] = {"subject": None, "role": "", "resource": None}
        args.update(kw)
        page = await w.tenancy.list_bindings(
            T,
            consistency=LATEST,
            limit=0,
            after=None,
            **args,  # type: ignore[arg-type]
        )
        return [b.binding_id for b in page.items]

    by_id = sorted(b.binding_id for b in made)
    assert len(await ids()) == 7
    assert await ids(resource=obj("folder:f")) == by_id
    ann = SubjectRef("user", "ann")
    assert await ids(subject=ann) == sorted(b.binding_id for b in made if b.subject == ann)
    assert await ids(subject=ann, role="billing") == [
        b.binding_id for b in made if b.subject == ann and b.role == "billing"
    ]
    assert len(await ids(subject=parse_subject("group:g#member"))) == 1
    # pages of two at the first page's revision (the API's cursor pins it) despite a write
    page = await w.tenancy.list_bindings(
        T, subject=None, role="", resource=None, consistency=LATEST, limit=2, after=None
    )
    seen = [b.binding_id for b in page.items]
    await w.tenancy.create_binding(T, "auditor", SubjectRef("user", "dan"), None, CALL)
    while page.next_after:
        page = await w.tenancy.list_bindings(
            T,
            subject=None,
            role="",
            resource=None,
            consistency=_exact(page.revision),
            limit=2,
            after=page.next_after,
        )
        seen += [b.binding_id for b in page.items]
    assert len(seen) == 7
    assert seen == sorted(seen)
    roles = await w.tenancy.list_roles(T, LATEST, 2, None)
    assert [r.name for r in roles.items] == ["auditor", "billing"]
    assert roles.items[0].built_in
    assert roles.next_after == "billing"
    rest = await w.tenancy.list_roles(T, _exact(roles.revision), 2, roles.next_after)
    assert [r.name for r in rest.items] == ["zeta"]
    assert rest.next_after is None


def _exact(revision: int) -> Consistency:
    return Consistency(ConsistencyMode.AT_EXACT_SNAPSHOT, revision)


async def test_deleting_a_binding_ends_what_it_granted() -> None:
    w = await world()
    await w.touch(T, "invoice:i#folder@folder:f")
    b, _ = await w.tenancy.create_binding(T, "auditor", SubjectRef("user", "ann"), None, CALL)
    assert (await w.check(T, "invoice:i#view@user:ann")).decision is Decision.ALLOWED
    await w.tenancy.delete_binding(T, b.binding_id, CALL)
    assert (await w.check(T, "invoice:i#view@user:ann")).decision is Decision.DENIED
    await refused(w, w.tenancy.delete_binding(T, b.binding_id, CALL), NotFound)


async def test_internal_relationships_never_leave_through_the_relationships_api() -> None:
    w = await world()
    await w.touch(T, "invoice:i#folder@folder:f")
    await w.tenancy.create_role(T, "billing", "", BILLING, CALL)
    await w.tenancy.create_binding(T, "billing", SubjectRef("user", "ann"), None, CALL)
    await w.lifecycle.suspend(T, obj("user:bob"), "test", CALL)

    service = RelationshipService(
        store=w.store,
        schemas=w.schemas,
        resolver=RevisionResolver(w.store),
        audit=AuditTrail(None),
    )
    _, rels = await service.read(T, RelationshipFilter(), LATEST)
    assert [str(r) for r in rels] == ["invoice:i#folder@folder:f"]
    # paged: internal rows sort first and must not end the stream early
    _, page = await service.read(T, RelationshipFilter(), LATEST, limit=1)
    assert [str(r) for r in page] == ["invoice:i#folder@folder:f"]


async def test_roles_and_bindings_do_not_block_schema_changes() -> None:
    w = await world()
    await w.tenancy.create_role(T, "billing", "", BILLING, CALL)
    await w.tenancy.create_binding(T, "billing", SubjectRef("user", "ann"), None, CALL)
    await w.lifecycle.suspend(T, obj("user:bob"), "", CALL)
    await w.schemas.write(SCHEMA + "\ndefinition receipt {}\n")


async def test_every_write_is_an_admin_record_of_its_tenant() -> None:
    from authz_service.decisionlog import DecisionRecord
    from authz_service.service.lifecycle import LifecycleService
    from authz_service.service.tenancy import TenancyService

    records: list[DecisionRecord] = []

    class Writer:
        def expecting(self) -> AbstractContextManager[None]:
            return nullcontext()

        async def append(self, record: DecisionRecord) -> None:
            records.append(record)

        async def append_many(self, many: Sequence[DecisionRecord]) -> None:
            records.extend(many)

    w = await world()
    audit = AuditTrail(Writer())
    resolver = RevisionResolver(w.store)
    tenancy = TenancyService(
        store=w.store, schemas=w.schemas, resolver=resolver, audit=audit, grants=w.grants
    )
    lifecycle = LifecycleService(
        store=w.store, schemas=w.schemas, resolver=resolver, audit=audit, statuses=w.statuses
    )
    await w.touch(T, "group:g#member@user:ann")
    await tenancy.create_role(T, "billing", "", BILLING, CALL)
    b, _ = await tenancy.create_binding(T, "billing", SubjectRef("user", "ann"), None, CALL)
    await lifecycle.suspend(T, obj("user:ann"), "scim", CALL)
    await lifecycle.deprovision(T, obj("user:ann"), "scim: deleted", CALL)
    assert [(r.tenant, r.action, r.subject, r.reason) for r in records] == [
        (T, "/authz.v1.TenancyService/CreateRole", "", None),
        (T, "/authz.v1.TenancyService/CreateBinding", "user:ann", None),
        (T, "/authz.v1.TenancyService/SuspendSubject", "user:ann", "scim"),
        (T, "/authz.v1.TenancyService/DeprovisionSubject", "user:ann", "scim: deleted"),
    ]
    assert {r.decision for r in records} == {"APPLIED"}
    removed = records[-1].details
    assert removed["removed_relationships"] == ["group:g#member@user:ann"]
    assert removed["removed_bindings"] == [b.describe()]


async def test_a_role_or_binding_deleted_meanwhile_is_not_found() -> None:
    """Another replica removes the role or binding between this call's read and its
    write: the write's precondition fails, reported as what happened, not as the
    internal `preconditions[i]` of a request that has no such field."""
    w = await world()
    await w.tenancy.create_role(T, "billing", "", BILLING, CALL)
    ann = SubjectRef("user", "ann")
    binding, _ = await w.tenancy.create_binding(T, "billing", ann, None, CALL)
    store = w.store
    real_apply, real_delete = store.apply, store.delete

    async def apply_late(*args: Any, **kwargs: Any) -> Any:
        await real_delete(T, RelationshipFilter(ROLE, ("billing",)))
        return await real_apply(*args, **kwargs)

    async def delete_late(*args: Any, **kwargs: Any) -> Any:
        await real_delete(T, RelationshipFilter(BINDING, (binding.binding_id,)))
        return await real_delete(*args, **kwargs)

    store.apply = apply_late  # type: ignore[method-assign]
    with pytest.raises(NotFound, match="role `billing`") as err:
        await w.tenancy.update_role(T, "billing", "", BILLING, CALL)
    assert not getattr(err.value, "field", "")
    store.delete = delete_late  # type: ignore[method-assign]
    with pytest.raises(NotFound, match=f"binding `{binding.binding_id}`") as err:
        await w.tenancy.delete_binding(T, binding.binding_id, CALL)
    assert not getattr(err.value, "field", "")
