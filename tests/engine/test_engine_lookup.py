"""ListPermissions, LookupResources and LookupSubjects: order, paging, wildcards."""

from __future__ import annotations

import pytest

from authz_service.engine import Decision, ExcludedSubject, ResourceResult, SubjectResult
from authz_service.errors import InvalidArgument
from authz_service.model import EMPTY_CONTEXT, FrozenContext, ObjectRef, SubjectRef

from .helpers import setup

SCHEMA = """
definition user {}
caveat over(x int) { x > 5 }
definition group {
    relation member: user | group#member
}
definition folder {
    relation viewer: user | group#member
    permission view = viewer
}
definition doc {
    relation folder: folder
    relation viewer: user | user:* | group#member | user with over
    relation banned: user | group#member
    permission view = (viewer + folder->view) - banned
    permission comment = view
    permission admin = nil
}
"""

RELS = [
    "doc:d1#viewer@user:ann",
    "doc:d2#folder@folder:f",
    "folder:f#viewer@group:eng#member",
    "group:eng#member@user:ann",
    "group:eng#member@user:bob",
    "doc:d3#viewer@user:ann[over]",
    "doc:d4#viewer@user:ann",
    "doc:d4#banned@user:ann",
    "doc:d5#viewer@user:*",
    "doc:d5#banned@group:eng#member",
    "doc:d5#viewer@user:cat",
]
ANN = SubjectRef("user", "ann")


async def _resources(s, **kw) -> list[ResourceResult]:  # type: ignore[no-untyped-def]
    return [
        r async for r in s.engine.lookup_resources(s.snap, "doc", "view", ANN, EMPTY_CONTEXT, **kw)
    ]


async def test_lookup_resources_sorted_with_conditional() -> None:
    s = await setup(SCHEMA, RELS)
    found = await _resources(s)
    assert [(r.resource_id, r.decision, r.missing_context) for r in found] == [
        ("d1", Decision.ALLOWED, ()),
        ("d2", Decision.ALLOWED, ()),
        ("d3", Decision.CONDITIONAL, ("x",)),
    ]
    with_x = [
        r.resource_id
        async for r in s.engine.lookup_resources(
            s.snap, "doc", "view", ANN, FrozenContext({"x": 9})
        )
    ]
    assert with_x == ["d1", "d2", "d3"]


async def test_lookup_resources_pages_with_cursor() -> None:
    s = await setup(SCHEMA, RELS)
    first = await _resources(s, limit=2)
    rest = await _resources(s, after=first[-1].resource_id, limit=2)
    assert [r.resource_id for r in first + rest] == ["d1", "d2", "d3"]
    with pytest.raises(InvalidArgument):
        await _resources(s, limit=0)


async def test_lookup_resources_for_a_wildcard_grant() -> None:
    s = await setup(SCHEMA, RELS)
    dan = SubjectRef("user", "dan")
    found = [
        r.resource_id
        async for r in s.engine.lookup_resources(s.snap, "doc", "view", dan, EMPTY_CONTEXT)
    ]
    assert found == ["d5"]


async def _subjects(s, resource: str, **kw) -> list[SubjectResult]:  # type: ignore[no-untyped-def]
    return [
        x
        async for x in s.engine.lookup_subjects(
            s.snap, ObjectRef("doc", resource), "view", "user", EMPTY_CONTEXT, **kw
        )
    ]


async def test_lookup_subjects_wildcard_lists_exclusions() -> None:
    s = await setup(SCHEMA, RELS)
    found = await _subjects(s, "d5")
    assert found == [
        SubjectResult(
            "*",
            Decision.ALLOWED,
            (),
            (ExcludedSubject("ann", Decision.DENIED), ExcludedSubject("bob", Decision.DENIED)),
        ),
        SubjectResult("cat", Decision.ALLOWED, ()),
    ]
    # paging past the wildcard
    assert [x.subject_id for x in await _subjects(s, "d5", after="*")] == ["cat"]
    assert [x.subject_id for x in await _subjects(s, "d5", limit=1)] == ["*"]


async def test_lookup_subjects_through_groups_and_subject_sets() -> None:
    s = await setup(SCHEMA, RELS)
    assert [x.subject_id for x in await _subjects(s, "d2")] == ["ann", "bob"]
    sets = [
        x.subject_id
        async for x in s.engine.lookup_subjects(
            s.snap,
            ObjectRef("doc", "d2"),
            "view",
            "group",
            EMPTY_CONTEXT,
            subject_relation="member",
        )
    ]
    assert sets == ["eng"]


async def test_list_permissions_in_schema_order_only_permissions() -> None:
    s = await setup(SCHEMA, RELS)
    listed = await s.engine.list_permissions(s.snap, ObjectRef("doc", "d3"), ANN, EMPTY_CONTEXT)
    assert [(name, r.decision) for name, r in listed] == [
        ("view", Decision.CONDITIONAL),
        ("comment", Decision.CONDITIONAL),
        ("admin", Decision.DENIED),
    ]


async def test_lookup_input_errors_raise_before_iteration() -> None:
    s = await setup(SCHEMA, RELS)
    with pytest.raises(InvalidArgument) as info:
        s.engine.lookup_resources(s.snap, "nodef", "view", ANN, EMPTY_CONTEXT)
    assert info.value.field == "resource_type"
    with pytest.raises(InvalidArgument) as info:
        s.engine.lookup_subjects(s.snap, ObjectRef("doc", "d1"), "view", "nodef", EMPTY_CONTEXT)
    assert info.value.field == "subject_type"
