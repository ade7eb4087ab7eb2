"""Cycles terminate with the right answer; limits and errors are errors, never ALLOWED."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from authz_service.engine import CheckResult, Decision, Limits
from authz_service.errors import (
    CaveatError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LimitExceeded,
)
from authz_service.model import (
    EMPTY_CONTEXT,
    ObjectRef,
    RelationshipUpdate,
    SubjectRef,
    UpdateOp,
    parse_relationship,
)

from .helpers import TENANT, item, setup

GROUPS = """
definition user {}
caveat over(x int) { x > 5 }
definition group {
    relation member: user | user with over | group#member
}
definition folder {
    relation parent: folder
    relation viewer: user
    permission view = viewer + parent->view
}
definition doc {
    relation viewer: user | group#member
    relation folder: folder
    permission view = viewer + folder->view
}
"""


async def test_group_containing_itself_terminates() -> None:
    s = await setup(
        GROUPS,
        ["group:a#member@group:a#member", "group:a#member@user:ann", "doc:d#viewer@group:a#member"],
    )
    assert await s.decision("doc:d#view@user:ann") is Decision.ALLOWED
    result = await s.check("doc:d#view@user:bob")
    assert result.decision is Decision.DENIED
    assert result.cacheable  # the cycle was closed inside this request's evaluation


async def test_mutual_groups_give_exact_answers_from_either_side() -> None:
    rels = [
        "group:a#member@group:b#member",
        "group:b#member@group:a#member",
        "group:b#member@user:ann",
        'group:a#member@user:cat[over:{"x": 1}]',
        "group:b#member@user:dan[over]",
    ]
    s = await setup(GROUPS, rels)
    for group in ("a", "b"):
        assert await s.decision(f"group:{group}#member@user:ann") is Decision.ALLOWED
        assert await s.decision(f"group:{group}#member@user:cat") is Decision.DENIED
        result = await s.check(f"group:{group}#member@user:dan")
        assert (result.decision, result.missing_context) == (Decision.CONDITIONAL, ("x",))


async def test_folder_parent_cycle_terminates() -> None:
    s = await setup(
        GROUPS,
        [
            "folder:a#parent@folder:b",
            "folder:b#parent@folder:a",
            "folder:b#viewer@user:ann",
            "doc:d#folder@folder:a",
        ],
    )
    assert await s.decision("doc:d#view@user:ann") is Decision.ALLOWED
    assert await s.decision("doc:d#view@user:bob") is Decision.DENIED


async def test_dense_cycles_stay_cheap() -> None:
    """Twelve groups all containing each other: a path-only cycle cut would walk every
    simple path (12! of them); closing the cycle memoizes the false answers."""
    names = [f"g{i}" for i in range(12)]
    rels = [f"group:{a}#member@group:{b}#member" for a in names for b in names if a != b]
    s = await setup(GROUPS, [*rels, "group:g11#member@user:ann"])
    # A guard against hanging, not a speed bound: walking 12! paths would never finish.
    async with asyncio.timeout(120):
        assert await s.decision("group:g0#member@user:bob") is Decision.DENIED
        assert await s.decision("group:g0#member@user:ann") is Decision.ALLOWED


def _chain(length: int) -> list[str]:
    rels = [f"group:g{i}#member@group:g{i + 1}#member" for i in range(length)]
    return [*rels, f"group:g{length}#member@user:deep", "doc:d#viewer@group:g0#member"]


async def test_depth_limit_is_an_error_naming_the_check() -> None:
    s = await setup(GROUPS, _chain(60))
    says = r"max depth `50` exceeded checking `doc:d#view`, the limit AUTHZ_MAX_DEPTH = 50"
    with pytest.raises(LimitExceeded, match=says):
        await s.check("doc:d#view@user:deep")
    deeper = Limits(max_depth=100)
    result = await s.check("doc:d#view@user:deep", limits=deeper)
    assert result.decision is Decision.ALLOWED


async def test_fanout_limit_counts_expansions_not_direct_subjects() -> None:
    rels = [f"doc:d#folder@folder:f{i}" for i in range(5)]
    rels += [f"doc:d#viewer@user:u{i}" for i in range(10)]
    s = await setup(GROUPS, rels, limits=Limits(max_fanout=3))
    assert await s.decision("doc:d#view@user:u7") is Decision.ALLOWED
    with pytest.raises(LimitExceeded, match=r"fan-out .* the limit AUTHZ_MAX_FANOUT = 3"):
        await s.check("doc:d#view@user:nobody")


async def test_deadline() -> None:
    s = await setup(GROUPS, ["doc:d#viewer@user:ann"])
    past = Limits(deadline=time.monotonic() - 1)
    with pytest.raises(DeadlineExceeded):
        await s.check("doc:d#view@user:ann", limits=past)
    ann = SubjectRef("user", "ann")
    with pytest.raises(DeadlineExceeded):
        _ = [
            r
            async for r in s.engine.lookup_resources(
                s.snap, "doc", "view", ann, EMPTY_CONTEXT, limits=past
            )
        ]
    doc = ObjectRef("doc", "d")
    with pytest.raises(DeadlineExceeded):
        _ = [
            r
            async for r in s.engine.lookup_subjects(
                s.snap, doc, "view", "user", EMPTY_CONTEXT, limits=past
            )
        ]


async def test_a_stored_relationship_with_a_caveat_the_schema_lacks_grants_nothing() -> None:
    s = await setup(GROUPS)
    rogue = parse_relationship("doc:d#viewer@user:ann[ghost]")  # bypasses write validation
    await s.store.write(TENANT, [RelationshipUpdate(UpdateOp.CREATE, rogue)])
    snap = replace(s.snap, revision=s.snap.revision + 1)
    result = await s.engine.check(snap, item("doc:d#view@user:ann"))
    assert result.decision is Decision.DENIED


async def test_a_stored_context_that_does_not_fit_its_caveat_is_blamed_never_allowed() -> None:
    """A row stored before writes checked context types: every decision that reaches it
    fails naming the relationship, whatever (and however right) the request context."""
    bad = 'group:g#member@user:ann[over:{"x": "many"}]'
    s = await setup(GROUPS, [bad, "doc:d#viewer@group:g#member", "doc:d#viewer@user:bob"])
    blamed = r"relationship `group:g#member@user:ann` is stored with context .* expects int"
    ann, doc = SubjectRef("user", "ann"), ObjectRef("doc", "d")
    for context in ({"x": 9}, {}):
        with pytest.raises(FailedPrecondition, match=blamed):
            await s.check("doc:d#view@user:ann", context)
        with pytest.raises(FailedPrecondition, match=blamed):
            await s.check("doc:d#view@user:ann", context, explain=True)
    with pytest.raises(FailedPrecondition, match=blamed):
        await s.engine.list_permissions(s.snap, doc, ann, EMPTY_CONTEXT)
    with pytest.raises(FailedPrecondition, match=blamed):
        _ = [r async for r in s.engine.lookup_resources(s.snap, "doc", "view", ann, EMPTY_CONTEXT)]
    with pytest.raises(FailedPrecondition, match=blamed):
        _ = [r async for r in s.engine.lookup_subjects(s.snap, doc, "view", "user", EMPTY_CONTEXT)]
    bulk = await s.engine.check_bulk(
        s.snap, [item("doc:d#view@user:bob"), item("doc:d#view@user:ann")]
    )
    assert isinstance(bulk[0], CheckResult)
    assert bulk[0].decision is Decision.ALLOWED
    assert isinstance(bulk[1], FailedPrecondition)


async def test_caveat_evaluation_error_propagates() -> None:
    s = await setup(GROUPS, ["group:g#member@user:ann[over]", "doc:d#viewer@group:g#member"])
    with pytest.raises(CaveatError):
        await s.check("doc:d#view@user:ann", {"x": "not a number"})


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("nodef:d#view@user:ann", "resource"),
        ("doc:d#nope@user:ann", "permission"),
        ("doc:d#view@nodef:ann", "subject"),
        ("doc:d#view@group:g#nope", "subject"),
        ("doc:d#view@user:*", "subject"),
    ],
)
async def test_invalid_input_names_the_field(text: str, field: str) -> None:
    s = await setup(GROUPS)
    with pytest.raises(InvalidArgument) as info:
        await s.check(text)
    assert info.value.field == field
