"""The one storage contract suite: every test runs on MemoryStore and PostgresStore.

It pins protocol.py's semantics: snapshot reads at any revision, atomic writes with
CREATE/TOUCH/DELETE, preconditions and idempotency keys, ordering and keyset
pagination, Watch changes, revision checks, schema versions and tenant isolation.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from authz_service.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from authz_service.model import (
    CaveatRef,
    FrozenContext,
    ObjectRef,
    Relationship,
    RelationshipFilter,
    RelationshipKind,
    RelationshipUpdate,
    SubjectRef,
    UpdateOp,
    parse_relationship,
)
from authz_service.store import Change, Precondition, Store, WholeResources
from authz_service.store.memory import sort_key

T = "acme"
EVERYTHING = RelationshipFilter()


def rel(text: str) -> Relationship:
    return parse_relationship(text)


def create(text: str) -> RelationshipUpdate:
    return RelationshipUpdate(UpdateOp.CREATE, rel(text))


def touch(text: str) -> RelationshipUpdate:
    return RelationshipUpdate(UpdateOp.TOUCH, rel(text))


def remove(text: str) -> RelationshipUpdate:
    return RelationshipUpdate(UpdateOp.DELETE, rel(text))


async def live(store: Store, tenant: str = T, revision: int | None = None) -> list[str]:
    at = await store.head_revision(tenant) if revision is None else revision
    return [str(r) for r in await store.read(tenant, at, EVERYTHING)]


# --- revisions and snapshots --------------------------------------------------------------


async def test_a_tenant_that_never_wrote_is_at_revision_zero(store: Store) -> None:
    assert await store.head_revision(T) == 0
    assert await store.read(T, 0, EVERYTHING) == []
    await store.check_revision(T, 0)


async def test_each_write_returns_the_next_revision(store: Store) -> None:
    assert await store.write(T, [touch("doc:one#viewer@user:ann")]) == 1
    assert await store.write(T, [touch("doc:one#viewer@user:bob")]) == 2
    assert await store.write(T, []) == 3
    assert await store.head_revision(T) == 3


async def test_reads_at_a_revision_see_exactly_that_snapshot(store: Store) -> None:
    r1 = await store.write(T, [create("doc:one#viewer@user:ann")])
    r2 = await store.write(T, [create("doc:one#viewer@user:bob")])
    r3 = await store.write(T, [remove("doc:one#viewer@user:ann")])
    assert await live(store, revision=0) == []
    assert await live(store, revision=r1) == ["doc:one#viewer@user:ann"]
    assert await live(store, revision=r2) == ["doc:one#viewer@user:ann", "doc:one#viewer@user:bob"]
    assert await live(store, revision=r3) == ["doc:one#viewer@user:bob"]


async def test_check_revision_accepts_known_and_refuses_unknown_revisions(store: Store) -> None:
    head = await store.write(T, [touch("doc:one#viewer@user:ann")])
    await store.write(T, [touch("doc:one#viewer@user:bob")])
    await store.check_revision(T, head)
    await store.check_revision(T, head + 1)
    await store.check_revision(T, 0)
    with pytest.raises(FailedPrecondition):
        await store.check_revision(T, head + 2)
    with pytest.raises(FailedPrecondition):
        await store.check_revision(T, -1)
    with pytest.raises(FailedPrecondition):
        await store.check_revision("other", 1)


# --- write semantics ----------------------------------------------------------------------


async def test_create_of_a_live_relationship_fails_and_writes_nothing(store: Store) -> None:
    await store.write(T, [create("doc:one#viewer@user:ann")])
    with pytest.raises(AlreadyExists, match="doc:one#viewer@user:ann"):
        await store.write(T, [create("doc:two#viewer@user:bob"), create("doc:one#viewer@user:ann")])
    assert await store.head_revision(T) == 1
    assert await live(store) == ["doc:one#viewer@user:ann"]


async def test_create_after_delete_succeeds(store: Store) -> None:
    await store.write(T, [create("doc:one#viewer@user:ann")])
    await store.write(T, [remove("doc:one#viewer@user:ann")])
    await store.write(T, [create("doc:one#viewer@user:ann")])
    assert await live(store) == ["doc:one#viewer@user:ann"]


async def test_touch_replaces_caveat_and_expiration_and_keeps_history(store: Store) -> None:
    r1 = await store.write(T, [touch("doc:one#viewer@user:ann")])
    later = 'doc:one#viewer@user:ann[on_vpn:{"net":"10.0.0.0/8"}][expiration:2030-01-02T03:04:05Z]'
    r2 = await store.write(T, [touch(later)])
    assert await store.read(T, r2, EVERYTHING) == [rel(later)]
    assert await store.read(T, r1, EVERYTHING) == [rel("doc:one#viewer@user:ann")]
    r3 = await store.write(T, [touch(later)])  # touching an identical row is fine too
    assert await store.read(T, r3, EVERYTHING) == [rel(later)]


async def test_delete_of_an_absent_relationship_is_a_no_op(store: Store) -> None:
    await store.write(T, [touch("doc:one#viewer@user:ann")])
    revision = await store.write(T, [remove("doc:one#viewer@user:zed")])
    assert revision == 2
    assert await live(store) == ["doc:one#viewer@user:ann"]


@pytest.mark.parametrize(
    "updates",
    [
        [touch("doc:one#viewer@user:ann"), remove("doc:one#viewer@user:ann")],
        [touch("doc:one#viewer@user:ann"), touch("doc:one#viewer@user:ann[some_caveat]")],
        [create("doc:one#viewer@user:ann"), create("doc:one#viewer@user:ann")],
    ],
    ids=["touch-delete", "touch-touch", "create-create"],
)
async def test_one_relationship_twice_in_a_call_is_invalid(
    store: Store, updates: list[RelationshipUpdate]
) -> None:
    with pytest.raises(InvalidArgument, match="appears twice"):
        await store.write(T, updates)
    assert await store.head_revision(T) == 0


async def test_preconditions_are_checked_against_live_relationships(store: Store) -> None:
    await store.write(T, [touch("doc:one#owner@user:ann"), touch("doc:one#viewer@user:bob")])
    await store.write(T, [remove("doc:one#viewer@user:bob")])
    owner = RelationshipFilter("doc", ("one",), "owner", "user", ("ann",))
    viewer = RelationshipFilter("doc", ("one",), "viewer")
    revision = await store.write(
        T,
        [touch("doc:one#editor@user:cat")],
        preconditions=[Precondition(owner), Precondition(viewer, must_exist=False)],
    )
    assert revision == 3
    with pytest.raises(FailedPrecondition):
        await store.write(
            T, [touch("doc:two#editor@user:dan")], preconditions=[Precondition(viewer)]
        )
    with pytest.raises(FailedPrecondition):
        await store.write(
            T,
            [touch("doc:two#editor@user:dan")],
            preconditions=[Precondition(owner, must_exist=False)],
        )
    assert await store.head_revision(T) == 3
    assert "doc:two#editor@user:dan" not in await live(store)


async def test_a_failed_precondition_names_its_index(store: Store) -> None:
    await store.write(T, [touch("doc:one#owner@user:ann")])
    holds = Precondition(RelationshipFilter("doc", ("one",), "owner"))
    fails = Precondition(RelationshipFilter(subject_type="user", subject_ids=("ann",)), False)
    with pytest.raises(FailedPrecondition, match=r"`preconditions\[2\]`") as refused:
        await store.write(T, [touch("doc:two#owner@user:bob")], preconditions=[holds, holds, fails])
    assert refused.value.field == "preconditions[2]"
    with pytest.raises(FailedPrecondition) as refused:
        await store.delete(T, EVERYTHING, preconditions=[fails, holds])
    assert refused.value.field == "preconditions[0]"
    assert await live(store) == ["doc:one#owner@user:ann"]


# Internal bookkeeping (tenancy's roles and bindings); no parser accepts the `__` name.
INTERNAL = Relationship(ObjectRef("__binding", "b1"), "subject", SubjectRef("user", "ann"))


async def test_a_filter_can_spare_resource_types_by_prefix(store: Store) -> None:
    await store.write(
        T,
        [
            touch("doc:one#viewer@user:ann"),
            RelationshipUpdate(UpdateOp.TOUCH, INTERNAL),
            touch("folder:f#viewer@user:ann"),
            touch("doc:one#viewer@user:bob"),
        ],
    )
    ann = RelationshipFilter(subject_type="user", subject_ids=("ann",), spare_resource_prefix="__")
    assert [str(r) for r in await store.read(T, 1, ann)] == [
        "doc:one#viewer@user:ann",
        "folder:f#viewer@user:ann",
    ]
    spared = Precondition(RelationshipFilter(resource_type="__binding"), must_exist=True)
    assert await store.delete(T, ann, preconditions=[spared]) == (2, 2)
    assert await live(store) == ["__binding:b1#subject@user:ann", "doc:one#viewer@user:bob"]


async def test_an_idempotency_key_replays_the_first_revision(store: Store) -> None:
    first = await store.write(T, [touch("doc:one#viewer@user:ann")], idempotency_key="k1")
    again = await store.write(T, [touch("doc:one#viewer@user:ann")], idempotency_key="k1")
    assert again == first
    assert await store.head_revision(T) == first
    # the same key in another tenant is another write
    assert await store.write("other", [touch("doc:one#viewer@user:ann")], idempotency_key="k1") == 1
    assert await store.write(T, [], idempotency_key="k2") == first + 1


async def test_an_idempotency_key_reused_for_another_request_is_refused(store: Store) -> None:
    # The revocation must not be "replayed" as the earlier grant: it would be dropped.
    grant = touch("document:secret#viewer@user:mallory")
    first = await store.write(T, [grant], idempotency_key="request-42")
    with pytest.raises(FailedPrecondition, match="request-42") as refused:
        await store.write(
            T, [remove("document:secret#viewer@user:mallory")], idempotency_key="request-42"
        )
    assert refused.value.field == "idempotency_key"
    assert await store.head_revision(T) == first
    # Preconditions are part of the request, and so are caveat and expiration.
    guard = Precondition(RelationshipFilter("document", ("secret",), "owner"), must_exist=False)
    later = "[expiration:2099-01-01T00:00:00Z]"
    for other in (
        {"preconditions": [guard]},
        {"updates": [touch("document:secret#viewer@user:mallory" + later)]},
        {"updates": [create("document:secret#viewer@user:mallory")]},
        {"updates": [grant, touch("document:secret#viewer@user:eve")]},
    ):
        kwargs = {"updates": [grant], **other}
        with pytest.raises(FailedPrecondition, match="request-42"):
            await store.write(T, idempotency_key="request-42", **kwargs)  # type: ignore[arg-type]
    assert await store.head_revision(T) == first
    assert await live(store) == ["document:secret#viewer@user:mallory"]


async def test_the_same_request_in_another_order_replays(store: Store) -> None:
    ann = touch('doc:one#viewer@user:ann[only_on:{"a":1,"b":[2,3]}]')
    bob = touch("doc:one#viewer@user:bob")
    first = await store.write(T, [ann, bob], idempotency_key="k")
    reordered = touch('doc:one#viewer@user:ann[only_on:{"b":[2,3],"a":1}]')
    again = await store.write(T, [bob, reordered], idempotency_key="k")
    assert (again, type(again).__name__) == (first, "ReplayedRevision")


async def test_a_refused_idempotency_key_is_echoed_short(store: Store) -> None:
    key = "k" * 5000
    await store.write(T, [touch("doc:one#viewer@user:ann")], idempotency_key=key)
    with pytest.raises(FailedPrecondition) as refused:
        await store.write(T, [remove("doc:one#viewer@user:ann")], idempotency_key=key)
    assert len(refused.value.message) < 300
    assert "5000 bytes" in refused.value.message


async def test_a_failed_write_does_not_use_up_its_idempotency_key(store: Store) -> None:
    await store.write(T, [create("doc:one#viewer@user:ann")])
    with pytest.raises(AlreadyExists):
        await store.write(T, [create("doc:one#viewer@user:ann")], idempotency_key="k")
    revision = await store.write(T, [touch("doc:one#viewer@user:bob")], idempotency_key="k")
    assert revision == 2
    assert await store.write(T, [touch("doc:one#viewer@user:bob")], idempotency_key="k") == 2


async def test_delete_by_filter_removes_only_matches_at_one_revision(store: Store) -> None:
    await store.write(
        T,
        [
            touch("doc:one#viewer@user:ann"),
            touch("doc:one#viewer@user:bob"),
            touch("doc:one#editor@user:ann"),
            touch("doc:two#viewer@user:ann"),
        ],
    )
    revision, count = await store.delete(T, RelationshipFilter("doc", ("one",), "viewer"))
    assert (revision, count) == (2, 2)
    assert await live(store) == ["doc:one#editor@user:ann", "doc:two#viewer@user:ann"]
    assert await live(store, revision=1) == [
        "doc:one#editor@user:ann",
        "doc:one#viewer@user:ann",
        "doc:one#viewer@user:bob",
        "doc:two#viewer@user:ann",
    ]
    assert await store.delete(T, RelationshipFilter("doc", ("nine",))) == (3, 0)


async def test_delete_with_a_failing_precondition_deletes_nothing(store: Store) -> None:
    await store.write(T, [touch("doc:one#viewer@user:ann")])
    missing = Precondition(RelationshipFilter("doc", ("one",), "owner"))
    with pytest.raises(FailedPrecondition):
        await store.delete(T, EVERYTHING, preconditions=[missing])
    assert await store.head_revision(T) == 1
    assert await live(store) == ["doc:one#viewer@user:ann"]


async def test_apply_deletes_by_filters_and_writes_at_one_revision(store: Store) -> None:
    await store.write(
        T,
        [
            touch("doc:one#viewer@user:ann"),
            touch("doc:two#viewer@user:ann"),
            touch("doc:two#owner@group:eng#member"),
            touch("group:eng#member@user:ann"),
            touch("doc:one#viewer@user:bob"),
        ],
    )
    revision, deleted = await store.apply(
        T,
        [create("status:user#gone@user:ann"), touch("doc:one#viewer@user:cat")],
        [
            RelationshipFilter(subject_type="user", subject_ids=("ann",)),
            RelationshipFilter("doc", ("two",)),  # overlaps the first: reported once
        ],
    )
    assert revision == 2
    assert [str(r) for r in deleted] == [
        "doc:one#viewer@user:ann",
        "doc:two#owner@group:eng#member",
        "doc:two#viewer@user:ann",
        "group:eng#member@user:ann",
    ]
    assert await live(store) == [
        "doc:one#viewer@user:bob",
        "doc:one#viewer@user:cat",
        "status:user#gone@user:ann",
    ]
    assert len(await live(store, revision=1)) == 5
    changes = await store.changes(T, 1)
    assert {c.revision for c in changes} == {2}
    assert sorted((c.op.value, str(c.relationship)) for c in changes) == [
        ("delete", "doc:one#viewer@user:ann"),
        ("delete", "doc:two#owner@group:eng#member"),
        ("delete", "doc:two#viewer@user:ann"),
        ("delete", "group:eng#member@user:ann"),
        ("touch", "doc:one#viewer@user:cat"),
        ("touch", "status:user#gone@user:ann"),
    ]


async def test_apply_writes_again_what_a_filter_deletes(store: Store) -> None:
    await store.write(T, [touch("role:r#grants@perm:a"), touch("role:r#grants@perm:b")])
    revision, deleted = await store.apply(
        T,
        [create("role:r#grants@perm:b"), touch("role:r#grants@perm:c")],
        [RelationshipFilter("role", ("r",), "grants")],
    )
    assert [str(r) for r in deleted] == ["role:r#grants@perm:a", "role:r#grants@perm:b"]
    assert await live(store) == ["role:r#grants@perm:b", "role:r#grants@perm:c"]
    changes = await store.changes(T, 1)
    assert [(c.revision, c.op, str(c.relationship)) for c in changes] == [
        (revision, UpdateOp.DELETE, "role:r#grants@perm:a"),
        (revision, UpdateOp.TOUCH, "role:r#grants@perm:b"),
        (revision, UpdateOp.TOUCH, "role:r#grants@perm:c"),
    ]


async def test_apply_deletes_whole_every_resource_a_filter_matches(store: Store) -> None:
    await store.write(
        T,
        [
            touch("binding:b1#role@role:r"),
            touch("binding:b1#subject@user:ann"),
            touch("binding:b2#role@role:r"),
            touch("binding:b2#subject@user:bob"),
            touch("binding:b3#role@role:s"),
            touch("binding:b3#subject@group:eng#member"),
            touch("doc:one#viewer@user:ann"),
        ],
    )
    ann = RelationshipFilter(subject_type="user", subject_ids=("ann",))
    _, deleted = await store.apply(
        T,
        [],
        # Every filter sees the rows as they were before the call: the first one deletes
        # the row by which the second one finds binding b1, which still goes whole.
        [ann, WholeResources(replace(ann, resource_type="binding"))],
    )
    assert [str(r) for r in deleted] == [
        "binding:b1#role@role:r",
        "binding:b1#subject@user:ann",
        "doc:one#viewer@user:ann",
    ]
    _, deleted = await store.apply(
        T, [], [WholeResources(RelationshipFilter("binding", None, "role", "role", ("r", "s")))]
    )
    assert len(deleted) == 4
    assert await live(store) == []


async def test_apply_with_a_failing_precondition_or_create_writes_nothing(store: Store) -> None:
    await store.write(T, [touch("doc:one#viewer@user:ann")])
    missing = Precondition(RelationshipFilter("doc", ("one",), "owner"))
    with pytest.raises(FailedPrecondition):
        await store.apply(T, [touch("doc:x#viewer@user:a")], [EVERYTHING], preconditions=[missing])
    with pytest.raises(AlreadyExists):
        await store.apply(
            T, [create("doc:one#viewer@user:ann")], [RelationshipFilter("doc", ("two",))]
        )
    with pytest.raises(InvalidArgument):
        await store.apply(T, [touch("doc:x#viewer@user:a"), remove("doc:x#viewer@user:a")])
    assert await store.head_revision(T) == 1
    assert await live(store) == ["doc:one#viewer@user:ann"]
    assert await store.apply("other", [], [EVERYTHING]) == (1, [])


# --- reads --------------------------------------------------------------------------------

WORLD = [
    "doc:one#viewer@user:ann",
    "doc:one#viewer@user:bob",
    "doc:one#viewer@group:eng#member",
    "doc:one#viewer@user:*",
    "doc:one#editor@user:ann",
    "doc:two#viewer@user:ann",
    "doc:two#parent@folder:root",
    "folder:root#viewer@user:cat",
    "group:eng#member@user:bob",
]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (RelationshipFilter(resource_type="folder"), {"folder:root#viewer@user:cat"}),
        (
            RelationshipFilter("doc", ("one",), "viewer"),
            {
                "doc:one#viewer@user:ann",
                "doc:one#viewer@user:bob",
                "doc:one#viewer@group:eng#member",
                "doc:one#viewer@user:*",
            },
        ),
        (
            RelationshipFilter("doc", ("one", "two"), "viewer", "user", ("ann",), ""),
            {"doc:one#viewer@user:ann", "doc:two#viewer@user:ann"},
        ),
        (RelationshipFilter("doc", ()), set()),
        (RelationshipFilter(subject_type="group"), {"doc:one#viewer@group:eng#member"}),
        (
            RelationshipFilter(subject_type="group", subject_relation="member"),
            {"doc:one#viewer@group:eng#member"},
        ),
        (RelationshipFilter(subject_type="group", subject_relation=""), set()),
        (RelationshipFilter(subject_ids=("*",)), {"doc:one#viewer@user:*"}),
        (
            RelationshipFilter(relation="viewer", subject_type="user", subject_ids=("ann", "cat")),
            {"doc:one#viewer@user:ann", "doc:two#viewer@user:ann", "folder:root#viewer@user:cat"},
        ),
        (RelationshipFilter(relation="parent"), {"doc:two#parent@folder:root"}),
        (RelationshipFilter(resource_ids=("root", "eng")), set(WORLD[-2:])),
    ],
)
async def test_read_filters(store: Store, flt: RelationshipFilter, expected: set[str]) -> None:
    revision = await store.write(T, [touch(text) for text in WORLD])
    assert {str(r) for r in await store.read(T, revision, flt)} == expected


async def test_reads_are_ordered_and_pages_continue_after_a_key(store: Store) -> None:
    ids = ["a", "B", "b", "a-b", "a_b", "a|b", "Z9", "0", "a/b", "a=b", "a+b"]
    texts = [f"doc:{i}#viewer@user:{j}" for i in ids[:6] for j in ids[5:]]
    texts += [f"doc:{i}#editor@group:{j}#member" for i in ids[3:] for j in ids[:3]]
    revision = await store.write(T, [touch(t) for t in reversed(texts)])
    everything = await store.read(T, revision, EVERYTHING)
    assert everything == sorted((rel(t) for t in texts), key=sort_key)
    pages: list[Relationship] = []
    after: Relationship | None = None
    while True:
        page = await store.read(T, revision, EVERYTHING, limit=4, after=after)
        pages += page
        if len(page) < 4:
            break
        after = page[-1]
    assert pages == everything
    assert await store.read(T, revision, EVERYTHING, limit=0) == []


async def test_tenants_never_see_each_other(store: Store) -> None:
    await store.write("alpha", [touch("doc:one#viewer@user:ann")])
    await store.write("beta", [touch("doc:one#viewer@user:bob")])
    await store.write("beta", [touch("doc:two#viewer@user:bob")])
    assert await live(store, "alpha") == ["doc:one#viewer@user:ann"]
    assert await live(store, "beta") == ["doc:one#viewer@user:bob", "doc:two#viewer@user:bob"]
    assert await store.read("alpha", 2, EVERYTHING) == [rel("doc:one#viewer@user:ann")]
    assert await store.changes("alpha", 0) == [
        Change(1, UpdateOp.TOUCH, rel("doc:one#viewer@user:ann"))
    ]
    await store.delete("alpha", EVERYTHING)
    assert len(await live(store, "beta")) == 2


async def test_expired_relationships_are_still_returned(store: Store) -> None:
    text = "doc:one#viewer@user:ann[expiration:2001-01-01T00:00:00Z]"
    revision = await store.write(T, [touch(text)])
    assert await store.read(T, revision, EVERYTHING) == [rel(text)]


async def test_caveats_and_expirations_round_trip(store: Store) -> None:
    context = {"nested": {"list": [1, 2.5, "x", None, True]}, "ünï": "çødé ✓", "big": 2**53}
    with_context = Relationship(
        rel("doc:one#viewer@user:ann").resource,
        "viewer",
        rel("doc:one#viewer@user:ann").subject,
        CaveatRef("on_vpn", FrozenContext(context)),
        datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2))),
    )
    no_context = rel("doc:one#viewer@user:bob[weekdays]")
    revision = await store.write(
        T, [RelationshipUpdate(UpdateOp.TOUCH, with_context), touch(str(no_context))]
    )
    stored = await store.read(T, revision, EVERYTHING)
    assert stored == [with_context, no_context]
    assert stored[0].caveat is not None
    assert stored[0].caveat.context.to_dict() == context
    assert stored[0].expires_at == datetime(2031, 5, 6, 5, 8, 9, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "expires_at",
    [datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)],
    ids=["year-1", "year-9999"],
)
async def test_expirations_at_the_ends_of_the_timestamp_range_read_back_aware(
    store: Store, expires_at: datetime
) -> None:
    # The database driver writes these two instants as -infinity / infinity and reads
    # them back as naive datetimes: every later comparison with an aware time failed.
    written = Relationship(
        rel("doc:one#viewer@user:ann").resource,
        "viewer",
        rel("doc:one#viewer@user:ann").subject,
        None,
        expires_at,
    )
    revision = await store.write(T, [RelationshipUpdate(UpdateOp.TOUCH, written)])
    [stored] = await store.read(T, revision, EVERYTHING)
    assert stored.expires_at == expires_at
    assert stored.expires_at is not None
    assert stored.expires_at.utcoffset() == timedelta(0)


# --- Watch --------------------------------------------------------------------------------


async def test_changes_report_touches_and_deletes_in_revision_order(store: Store) -> None:
    await store.write(T, [touch("doc:one#viewer@user:bob"), touch("doc:one#viewer@user:ann")])
    await store.write(
        T, [touch("doc:one#viewer@user:ann[on_vpn]"), remove("doc:one#viewer@user:bob")]
    )
    await store.write(T, [remove("doc:one#viewer@user:zed")])  # nothing to report
    await store.delete(T, EVERYTHING)
    expected = [
        Change(1, UpdateOp.TOUCH, rel("doc:one#viewer@user:ann")),
        Change(1, UpdateOp.TOUCH, rel("doc:one#viewer@user:bob")),
        Change(2, UpdateOp.TOUCH, rel("doc:one#viewer@user:ann[on_vpn]")),
        Change(2, UpdateOp.DELETE, rel("doc:one#viewer@user:bob")),
        Change(4, UpdateOp.DELETE, rel("doc:one#viewer@user:ann[on_vpn]")),
    ]
    assert await store.changes(T, 0) == expected
    assert await store.changes(T, 1) == expected[2:]
    assert await store.changes(T, 4) == []
    assert await store.changes("other", 0) == []


async def test_a_page_of_changes_never_ends_inside_a_revision(store: Store) -> None:
    await store.write(T, [touch(f"doc:{i}#viewer@user:ann") for i in ("aa", "bb", "cc")])
    await store.write(T, [touch(f"doc:{i}#viewer@user:ann") for i in ("dd", "ee", "ff")])
    await store.write(T, [touch("doc:gg#viewer@user:ann")])
    page = await store.changes(T, 0, limit=2)
    assert [c.revision for c in page] == [1, 1, 1]
    page = await store.changes(T, 0, limit=4)
    assert [c.revision for c in page] == [1, 1, 1, 2, 2, 2]
    seen: list[Change] = []
    after = 0
    while batch := await store.changes(T, after, limit=2):
        seen += batch
        after = batch[-1].revision
    assert seen == await store.changes(T, 0)
    assert len(seen) == 7


async def test_a_replaced_relationship_is_one_change_when_paging(store: Store) -> None:
    # found by test_postgres_matches_memory: the replaced row's end must not count
    await store.write(T, [touch("doc:aa#viewer@user:ann"), touch("doc:bb#viewer@user:ann")])
    await store.write(T, [touch("doc:cc#viewer@user:ann"), touch("doc:aa#viewer@user:ann[cav]")])
    await store.write(T, [touch("doc:dd#viewer@user:ann")])
    page = await store.changes(T, 1, limit=3)
    assert [(c.revision, c.op) for c in page] == [(2, UpdateOp.TOUCH)] * 2 + [(3, UpdateOp.TOUCH)]


async def test_pages_of_changes_continue_inside_a_revision(store: Store) -> None:
    """Watch reads a revision of any size a page at a time (changes_page): a page may
    end inside a revision, and the next continues after its last change."""
    await store.write(T, [touch(f"doc:{i}#viewer@user:ann") for i in ("aa", "bb", "cc")])
    await store.write(T, [touch("doc:aa#viewer@user:ann[cav]"), remove("doc:bb#viewer@user:ann")])
    await store.write(T, [touch("doc:dd#viewer@user:ann")])
    everything = await store.changes(T, 0)
    assert len(everything) == 6
    for limit in (1, 2, 4, 10):
        seen: list[Change] = []
        page = await store.changes_page(T, 0, limit=limit)
        while page:
            assert len(page) <= limit
            seen += page
            last = page[-1]
            page = await store.changes_page(T, last.revision, within=last.relationship, limit=limit)
        assert seen == everything, limit
    assert await store.changes_page(T, 1, limit=10) == everything[3:]
    within = await store.changes_page(T, 1, within=rel("doc:aa#viewer@user:ann"), limit=10)
    assert within == everything[1:]
    assert await store.changes_page(T, 3, limit=10) == []
    assert await store.changes_page("other", 0, limit=10) == []


# --- schema -------------------------------------------------------------------------------


async def test_every_schema_version_is_kept(store: Store) -> None:
    assert await store.read_schema() is None
    first = await store.write_schema("v1", "definition user {}")
    await store.write_schema("v2", "definition user {}\ndefinition doc {}")
    current = await store.read_schema()
    assert current is not None
    assert (current.version, current.text) == ("v2", "definition user {}\ndefinition doc {}")
    old = await store.read_schema("v1")
    assert old is not None
    assert (old.version, old.text) == ("v1", "definition user {}")
    assert first.created_at.tzinfo is not None
    assert abs(first.created_at - datetime.now(UTC)) < timedelta(minutes=5)
    assert await store.read_schema("v3") is None


async def test_schema_writes_are_numbered_and_read_with_the_head(store: Store) -> None:
    assert await store.heads(T) == (0, 0)
    first = await store.write_schema("v1", "definition user {}")
    second = await store.write_schema("v2", "definition user {}\ndefinition doc {}")
    again = await store.write_schema("v1", "definition user {}")  # back to an old version
    assert first.seq < second.seq < again.seq
    current = await store.read_schema()
    assert current is not None
    assert (current.version, current.seq) == ("v1", again.seq)
    # A version read by name is its first write: when the version first appeared.
    named = await store.read_schema("v1")
    assert named is not None
    assert (named.seq, named.created_at) == (first.seq, first.created_at)
    await store.write(T, [touch("doc:one#viewer@user:ann")])
    assert await store.heads(T) == (1, again.seq)
    assert await store.heads("other") == (0, again.seq)


def _grant(role: str, pair: str, op: UpdateOp = UpdateOp.TOUCH) -> RelationshipUpdate:
    """A custom role's grant as tenancy/encoding.py stores it."""
    return RelationshipUpdate(
        op, Relationship(ObjectRef("__role", role), "grants", SubjectRef("__perm", pair))
    )


async def test_role_grants_name_every_live_grant_once_with_a_role_that_has_it(
    store: Store,
) -> None:
    await store.write("beta", [_grant("zeta", "doc.view"), _grant("reader", "doc.edit")])
    await store.write("alpha", [_grant("reader", "doc.view"), _grant("old", "folder.view")])
    await store.write("alpha", [_grant("old", "folder.view", UpdateOp.DELETE)])
    await store.write("alpha", [touch("doc:one#viewer@user:ann")])  # not a grant
    assert await store.role_grants() == {
        "doc.view": ("alpha", "reader"),
        "doc.edit": ("beta", "reader"),
    }


async def test_relationship_kinds_cover_live_relationships_of_every_tenant(store: Store) -> None:
    await store.write("alpha", [touch("doc:one#viewer@group:eng#member")])
    await store.write("beta", [touch("doc:one#viewer@user:ann"), touch("folder:x#owner@user:b")])
    await store.write("beta", [remove("folder:x#owner@user:b")])
    await store.write(
        "beta",
        [
            touch("doc:two#viewer@user:*[cav]"),
            touch("doc:two#viewer@user:b[expiration:2000-01-01T00:00:00Z]"),
        ],
    )
    assert await store.relationship_kinds() == {
        RelationshipKind("doc", "viewer", "group", "member"),
        RelationshipKind("doc", "viewer", "user", ""),
        RelationshipKind("doc", "viewer", "user", wildcard=True, caveat="cav"),
        RelationshipKind("doc", "viewer", "user", expiring=True),
    }
