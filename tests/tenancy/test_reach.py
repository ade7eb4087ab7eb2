"""GrantReach: how far one binding or relationship reaches (memory store)."""

from __future__ import annotations

import pytest

from authz_service.errors import InvalidArgument, NotFound
from authz_service.model import (
    Consistency,
    ConsistencyMode,
    ObjectRef,
    SubjectRef,
    parse_relationship,
)
from authz_service.service.tenancy import ReachPage
from authz_service.tenancy import Binding
from tests.tenancy.helpers import CALL, World, world

T = "acme"
LATEST = Consistency()
TREE = (
    "folder:sub#parent@folder:invoices",
    "folder:deep#parent@folder:sub",
    "invoice:inv1#folder@folder:sub",
    "invoice:inv2#folder@folder:deep",
    "invoice:inv3#folder@folder:invoices",
    "invoice:other#folder@folder:misc",
    "folder:invoices#viewer@group:finance#member",
)


async def populated() -> World:
    w = await world()
    await w.touch(T, *TREE)
    await w.tenancy.create_role(T, "billing", "", [("invoice", "pay"), ("invoice", "view")], CALL)
    return w


def rows(page: ReachPage) -> list[tuple[str, tuple[str, ...]]]:
    return [(str(obj), perms) for obj, perms in page.resources]


async def test_a_binding_reaches_the_invoices_below_its_scope() -> None:
    w = await populated()
    b, _ = await w.tenancy.create_binding(
        T, "billing", SubjectRef("group", "finance", "member"), ObjectRef("folder", "sub"), CALL
    )
    page = await w.tenancy.grant_reach(T, b.binding_id, LATEST, 0, None)
    assert rows(page) == [
        ("invoice:inv1", ("view", "pay")),
        ("invoice:inv2", ("view", "pay")),
    ]
    assert (page.resource_count, page.permission_count) == (2, 4)
    # a proposed binding is measured the same way, and writes nothing
    head = await w.store.head_revision(T)
    proposed = Binding("", "billing", SubjectRef("user", "x"), ObjectRef("folder", "invoices"))
    page = await w.tenancy.grant_reach(T, proposed, LATEST, 0, None)
    assert [r[0] for r in rows(page)] == ["invoice:inv1", "invoice:inv2", "invoice:inv3"]
    assert await w.store.head_revision(T) == head
    with pytest.raises(InvalidArgument):
        await w.tenancy.grant_reach(
            T, Binding("", "ghost", SubjectRef("user", "x"), None), LATEST, 0, None
        )
    with pytest.raises(NotFound):
        await w.tenancy.grant_reach(T, "b-unknown", LATEST, 0, None)


async def test_reach_follows_permissions_arrows_and_subject_sets() -> None:
    w = await populated()
    await w.tenancy.create_role(T, "folder-viewer", "", [("folder", "view")], CALL)
    viewer = Binding("", "folder-viewer", SubjectRef("user", "x"), ObjectRef("folder", "sub"))
    page = await w.tenancy.grant_reach(T, viewer, LATEST, 0, None)
    # folder.view on sub; parent->view to deep; folder->view to their invoices
    assert rows(page) == [
        ("folder:deep", ("view",)),
        ("folder:sub", ("view",)),
        ("invoice:inv1", ("view",)),
        ("invoice:inv2", ("view",)),
    ]
    # membership in finance reaches what finance members may do, bindings included
    await w.tenancy.create_binding(
        T, "billing", SubjectRef("group", "finance", "member"), ObjectRef("folder", "deep"), CALL
    )
    member = parse_relationship("group:finance#member@user:new")
    page = await w.tenancy.grant_reach(T, member, LATEST, 0, None)
    reached = dict(rows(page))
    assert reached["folder:invoices"] == ("view",)
    assert reached["invoice:inv3"] == ("view",)
    assert reached["invoice:inv2"] == ("view", "pay")
    assert "invoice:other" not in reached


async def test_tenant_wide_reach_and_paging() -> None:
    w = await populated()
    b, _ = await w.tenancy.create_binding(T, "billing", SubjectRef("user", "x"), None, CALL)
    first = await w.tenancy.grant_reach(T, b.binding_id, LATEST, 3, None)
    assert first.resource_count == 4
    assert first.next_after == "invoice:inv3"
    await w.touch(T, "invoice:late#folder@folder:misc")  # a later write: not in these pages
    pinned = Consistency(ConsistencyMode.AT_EXACT_SNAPSHOT, first.revision)  # as a cursor does
    second = await w.tenancy.grant_reach(T, b.binding_id, pinned, 3, first.next_after)
    assert second.next_after is None
    assert [r[0] for r in rows(first) + rows(second)] == [
        "invoice:inv1",
        "invoice:inv2",
        "invoice:inv3",
        "invoice:other",
    ]
    now = await w.tenancy.grant_reach(T, b.binding_id, LATEST, 0, None)
    assert now.resource_count == 5


async def test_a_proposed_binding_that_closes_a_cycle_is_refused_as_create_would() -> None:
    # tenancy.md: a proposed binding is "validated as CreateBinding would"; GrantReach
    # measured a binding CreateBinding refuses as a cycle, and said it reached nothing.
    w = await world()
    await w.tenancy.create_role(T, "member-of", "", [("group", "member")], CALL)
    eng = SubjectRef("group", "eng", "member")
    itself = Binding("", "member-of", eng, ObjectRef("group", "eng"))
    with pytest.raises(InvalidArgument, match="cycle"):
        await w.tenancy.grant_reach(T, itself, LATEST, 0, None)
    await w.tenancy.create_binding(
        T, "member-of", SubjectRef("group", "ops", "member"), ObjectRef("group", "eng"), CALL
    )
    through = Binding("", "member-of", eng, ObjectRef("group", "ops"))
    with pytest.raises(InvalidArgument, match="cycle"):
        await w.tenancy.grant_reach(T, through, LATEST, 0, None)
