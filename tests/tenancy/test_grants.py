"""Role bindings in the engine: what a binding grants, where, to whom, and at what cost."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from authz_service.engine import Decision, Engine, ExplainNode, Snapshot
from authz_service.errors import LimitExceeded
from authz_service.model import (
    FrozenContext,
    ObjectRef,
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    SubjectRef,
    UpdateOp,
    parse_relationship,
    parse_subject,
)
from authz_service.schema import compile_schema
from authz_service.store.memory import MemoryStore
from authz_service.tenancy import Binding, BindingGrants, CustomRole
from authz_service.tenancy.encoding import binding_relationships, role_relationships
from tests.tenancy.helpers import NOW, SCHEMA, item

T = "acme"


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[RelationshipFilter] = []

    async def read(
        self, tenant: str, revision: int, flt: RelationshipFilter, **kw: object
    ) -> list[Relationship]:  # type: ignore[override]
        self.reads.append(flt)
        return await super().read(tenant, revision, flt, **kw)  # type: ignore[arg-type]


def binding(role: str, subject: str, scope: str | None, ident: str = "") -> Binding:
    target = None
    if scope is not None:
        kind, _, name = scope.partition(":")
        target = ObjectRef(kind, name)
    return Binding(
        ident or f"b-{role}-{len(subject)}-{scope}", role, parse_subject(subject), target
    )


async def setup(
    relationships: Sequence[str] = (),
    roles: Sequence[CustomRole] = (),
    bindings: Sequence[Binding] = (),
    *,
    schema: str = SCHEMA,
    max_binding_rows: int = 4000,
    store: MemoryStore | None = None,
) -> tuple[Engine, Snapshot, BindingGrants]:
    store = store or MemoryStore()
    rels = [parse_relationship(r) for r in relationships]
    for role in roles:
        rels += role_relationships(role)
    for b in bindings:
        rels += binding_relationships(b)
    revision = await store.write(T, [RelationshipUpdate(UpdateOp.TOUCH, r) for r in rels])
    grants = BindingGrants(store, max_binding_rows=max_binding_rows)
    engine = Engine(store, grant_sources=[grants])
    return engine, Snapshot(T, revision, compile_schema(schema), NOW), grants


BILLING = CustomRole("billing-admin", "", (("invoice", "pay"), ("invoice", "view")))
TREE = [
    "folder:sub#parent@folder:invoices",
    "folder:deep#parent@folder:sub",
    "invoice:inv1#folder@folder:sub",
    "invoice:inv2#folder@folder:deep",
    "invoice:inv3#folder@folder:invoices",
    "invoice:other#folder@folder:misc",
    "group:finance#member@group:payables#member",
    "group:payables#member@user:ann",
]


async def decide(engine: Engine, snap: Snapshot, text: str) -> Decision:
    return (await engine.check(snap, item(text))).decision


@pytest.mark.parametrize("max_rows", [4000, 0])  # index in memory / bindings read per request
async def test_a_binding_flows_down_inherit_relations_to_group_members(max_rows: int) -> None:
    engine, snap, _ = await setup(
        TREE,
        [BILLING],
        [binding("billing-admin", "group:finance#member", "folder:invoices")],
        max_binding_rows=max_rows,
    )
    for invoice in ("inv1", "inv2", "inv3"):
        assert await decide(engine, snap, f"invoice:{invoice}#pay@user:ann") is Decision.ALLOWED
    assert await decide(engine, snap, "invoice:other#pay@user:ann") is Decision.DENIED
    assert await decide(engine, snap, "invoice:inv1#pay@user:bob") is Decision.DENIED
    # the role names invoice permissions only: the folder itself is not opened
    assert await decide(engine, snap, "folder:invoices#view@user:ann") is Decision.DENIED
    # a subject set of the group is the group's members
    assert await decide(engine, snap, "invoice:inv1#pay@group:payables#member") is Decision.ALLOWED


async def test_tenant_wide_wildcard_and_built_in_bindings() -> None:
    engine, snap, _ = await setup(
        TREE,
        [BILLING],
        [
            binding("billing-admin", "user:cat", None),
            binding("auditor", "user:*", "folder:sub"),
        ],
    )
    assert await decide(engine, snap, "invoice:other#pay@user:cat") is Decision.ALLOWED
    assert await decide(engine, snap, "invoice:never-written#pay@user:cat") is Decision.ALLOWED
    # auditor (declared in the schema) grants folder.view and invoice.view to every user
    assert await decide(engine, snap, "invoice:inv2#view@user:zed") is Decision.ALLOWED
    assert await decide(engine, snap, "folder:deep#view@user:zed") is Decision.ALLOWED
    assert await decide(engine, snap, "invoice:inv3#view@user:zed") is Decision.DENIED
    assert await decide(engine, snap, "invoice:inv2#pay@user:zed") is Decision.DENIED


async def test_a_role_granting_a_parent_permission_flows_through_arrows() -> None:
    viewer = CustomRole("folder-viewer", "", (("folder", "view"),))
    engine, snap, _ = await setup(
        TREE, [viewer], [binding("folder-viewer", "user:dan", "folder:invoices")]
    )
    # folder.view on folder:invoices, then `parent->view` and `folder->view` carry it down
    assert await decide(engine, snap, "folder:deep#view@user:dan") is Decision.ALLOWED
    assert await decide(engine, snap, "invoice:inv2#view@user:dan") is Decision.ALLOWED
    assert await decide(engine, snap, "invoice:inv2#pay@user:dan") is Decision.DENIED


async def test_a_role_may_grant_a_relation() -> None:
    member = CustomRole("member-of", "", (("group", "member"),))
    engine, snap, _ = await setup(
        ["folder:x#viewer@group:eng#member"],
        [member],
        [binding("member-of", "user:eve", "group:eng")],
    )
    assert await decide(engine, snap, "group:eng#member@user:eve") is Decision.ALLOWED
    assert await decide(engine, snap, "folder:x#view@user:eve") is Decision.ALLOWED


async def test_the_explanation_names_the_binding_and_the_path() -> None:
    b = binding("billing-admin", "group:finance#member", "folder:invoices", "b1")
    engine, snap, _ = await setup(TREE, [BILLING], [b])
    result = await engine.explain(snap, item("invoice:inv1#pay@user:ann"))
    grants = _find(result.explanation, "grant")
    assert len(grants) == 1
    node = grants[0]
    assert node.binding is not None
    assert (node.binding.binding_id, node.binding.role) == ("b1", "billing-admin")
    assert (node.binding.subject, node.binding.scope) == ("group:finance#member", "folder:invoices")
    relationships = [c.relationship for c in node.children if c.kind == "relationship"]
    assert relationships == [
        "invoice:inv1#folder@folder:sub",
        "folder:sub#parent@folder:invoices",
    ]
    assert node.result is Decision.ALLOWED
    # a binding consulted in vain is shown denied, with what failed
    denied = _find(
        (await engine.explain(snap, item("invoice:inv1#pay@user:bob"))).explanation, "grant"
    )
    assert [(n.result, n.binding.binding_id if n.binding else None) for n in denied] == [
        (Decision.DENIED, "b1")
    ]
    # where no role grants the permission, no grant node at all
    assert not _find(
        (await engine.explain(snap, item("folder:sub#view@user:ann"))).explanation, "grant"
    )


def _find(node: ExplainNode | None, kind: str) -> list[ExplainNode]:
    if node is None:
        return []
    found = [node] if node.kind == kind else []
    for child in node.children:
        found += _find(child, kind)
    return found


async def test_caveated_parents_make_the_grant_conditional() -> None:
    schema = (
        SCHEMA.replace(
            "relation folder: folder\n    relation owner",
            "relation folder: folder | folder with business_hours\n    relation owner",
        )
        + "\ncaveat business_hours(hour int) { hour >= 9 && hour < 17 }\n"
    )
    engine, snap, _ = await setup(
        ["invoice:late#folder@folder:invoices[business_hours]"],
        [BILLING],
        [binding("billing-admin", "user:ann", "folder:invoices")],
        schema=schema,
    )
    open_ = await engine.check(snap, item("invoice:late#pay@user:ann", {"hour": 10}))
    closed = await engine.check(snap, item("invoice:late#pay@user:ann", {"hour": 20}))
    unknown = await engine.check(snap, item("invoice:late#pay@user:ann"))
    assert (open_.decision, closed.decision) == (Decision.ALLOWED, Decision.DENIED)
    assert unknown.decision is Decision.CONDITIONAL
    assert unknown.missing_context == ("hour",)


async def test_cycles_in_the_hierarchy_and_in_bindings_terminate() -> None:
    member = CustomRole("member-of", "", (("group", "member"),))
    engine, snap, _ = await setup(
        ["folder:a#parent@folder:b", "folder:b#parent@folder:a", "invoice:i#folder@folder:a"],
        [BILLING, member],
        [
            binding("billing-admin", "user:ann", "folder:zzz"),
            # membership in each group through a binding to the other: a data cycle
            binding("member-of", "group:y#member", "group:x"),
            binding("member-of", "group:x#member", "group:y"),
        ],
    )
    assert await decide(engine, snap, "invoice:i#pay@user:ann") is Decision.DENIED
    assert await decide(engine, snap, "group:x#member@user:ann") is Decision.DENIED


async def test_a_deep_hierarchy_hits_the_depth_limit() -> None:
    chain = [f"folder:f{i}#parent@folder:f{i + 1}" for i in range(60)]
    engine, snap, _ = await setup(
        [*chain, "invoice:i#folder@folder:f0"],
        [BILLING],
        [binding("billing-admin", "user:ann", "folder:f60")],
    )
    with pytest.raises(LimitExceeded):
        await engine.check(snap, item("invoice:i#pay@user:ann"))


async def test_bindings_cost_no_read_where_no_role_grants() -> None:
    """With the tenant's index cached, a permission no role grants reads exactly what it
    reads without any grant source; the index is read once per revision."""
    store = CountingStore()
    engine, snap, grants = await setup(
        TREE,
        [BILLING],
        [binding("billing-admin", "group:finance#member", "folder:invoices")],
        store=store,
    )
    plain = Engine(store)
    question = item("folder:deep#view@user:ann")  # folder.view: no custom role grants it
    await engine.check(snap, item("invoice:inv1#pay@user:ann"))  # warms the index
    assert grants.indexes.loads == 1
    store.reads.clear()
    await plain.check(snap, question)
    without = list(store.reads)
    store.reads.clear()
    await engine.check(snap, question)
    # auditor (built in) grants folder.view but is bound nowhere: still nothing to read
    assert store.reads == without
    assert grants.indexes.loads == 1


async def test_lookups_include_what_bindings_grant() -> None:
    engine, snap, _ = await setup(
        TREE,
        [BILLING],
        [
            binding("billing-admin", "group:finance#member", "folder:sub"),
            binding("billing-admin", "user:cat", None),
            binding("auditor", "user:*", "folder:deep"),
        ],
    )
    ctx = FrozenContext()

    async def resources(subject: str, permission: str = "pay") -> list[str]:
        stream = engine.lookup_resources(snap, "invoice", permission, parse_subject(subject), ctx)
        return [r.resource_id async for r in stream]

    async def subjects(resource: str, permission: str = "pay") -> list[str]:
        kind, _, ident = resource.partition(":")
        stream = engine.lookup_subjects(snap, ObjectRef(kind, ident), permission, "user", ctx)
        return [r.subject_id async for r in stream]

    assert await resources("user:ann") == ["inv1", "inv2"]
    assert await resources("user:cat") == ["inv1", "inv2", "inv3", "other"]
    assert await resources("user:zed", "view") == ["inv2"]
    assert await subjects("invoice:inv2") == ["ann", "cat"]
    assert await subjects("invoice:inv2", "view") == ["*", "ann", "cat"]
    assert await subjects("invoice:inv3") == ["cat"]


def test_subject_refs_round_trip_through_the_encoding() -> None:
    from authz_service.tenancy.encoding import bindings_from

    b = Binding("b9", "r", SubjectRef("group", "g", "member"), None)
    assert bindings_from(binding_relationships(b)) == {"b9": b}


def test_public_names_are_pinned() -> None:
    from authz_service import tenancy

    assert sorted(tenancy.__all__) == [
        "Binding",
        "BindingGrants",
        "CustomRole",
        "Hierarchy",
        "Reach",
        "ReachRules",
        "StatusRecord",
        "SubjectStatus",
        "SubjectStatuses",
    ]
