"""Check semantics on hand-written cases: the rules the conformance files state, written
once more in equivalent but different shapes, plus expiry, caching metadata and
request-only relationships."""

from __future__ import annotations

from datetime import timedelta

import pytest

from authz_service.engine import Decision
from authz_service.model import parse_relationship

from .helpers import NOW, item, setup

ALLOWED, DENIED, CONDITIONAL = Decision.ALLOWED, Decision.DENIED, Decision.CONDITIONAL

DOCS = """
use expiration

definition user {}

caveat over(x int) { x > 5 }
caveat below(y int, z int) { y < z }

definition group {
    relation member: user | user with over | group#member
}

definition folder {
    relation parent: folder
    relation viewer: user | group#member
    permission view = viewer + parent->view
}

definition doc {
    relation folder: folder
    relation viewer: user | user:* | group#member | user with over | user with expiration
    relation editor: user | user with below
    relation banned: user | group#member
    permission edit = editor
    permission view = (viewer + edit + folder->view) - banned
    permission strict = viewer & editor
    permission everywhere = folder.all(view)
    permission nothing = nil
}
"""


async def test_direct_nested_and_arrow() -> None:
    s = await setup(
        DOCS,
        [
            "doc:d#viewer@user:ann",
            "doc:d#viewer@group:eng#member",
            "group:eng#member@group:core#member",
            "group:core#member@user:bob",
            "doc:d#folder@folder:f",
            "folder:f#parent@folder:root",
            "folder:root#viewer@user:cat",
        ],
    )
    for who in ("ann", "bob", "cat"):
        assert await s.decision(f"doc:d#view@user:{who}") is ALLOWED, who
    assert await s.decision("doc:d#view@user:dan") is DENIED
    assert await s.decision("doc:d#nothing@user:ann") is DENIED


async def test_exclusion_beats_wildcard_and_groups() -> None:
    s = await setup(
        DOCS,
        [
            "doc:d#viewer@user:*",
            "doc:d#banned@group:bad#member",
            "group:bad#member@user:eve",
        ],
    )
    assert await s.decision("doc:d#view@user:anyone") is ALLOWED
    assert await s.decision("doc:d#view@user:eve") is DENIED
    # a wildcard never matches a subject set
    assert await s.decision("doc:d#viewer@group:bad#member") is DENIED


async def test_caveat_context_precedence_and_missing_names() -> None:
    s = await setup(
        DOCS,
        [
            'doc:d#viewer@user:kept[over:{"x": 9}]',
            "doc:d#viewer@user:open[over]",
            "doc:d#editor@user:open[below]",
        ],
    )
    # the stored context wins over the request's
    assert await s.decision("doc:d#view@user:kept", {"x": 1}) is ALLOWED
    result = await s.check("doc:d#view@user:open", {"x": 1})
    assert (result.decision, result.missing_context) == (CONDITIONAL, ("y", "z"))
    result = await s.check("doc:d#strict@user:open")
    assert (result.decision, result.missing_context) == (CONDITIONAL, ("x", "y", "z"))
    assert await s.decision("doc:d#strict@user:open", {"x": 1}) is DENIED
    assert await s.decision("doc:d#strict@user:open", {"x": 6, "y": 1, "z": 2}) is ALLOWED


async def test_union_of_unknowns_unites_missing_names() -> None:
    s = await setup(
        DOCS,
        ["doc:d#viewer@user:u[over]", "doc:d#editor@user:u[below]"],
    )
    result = await s.check("doc:d#view@user:u")
    assert result.decision is CONDITIONAL
    assert result.missing_context == ("x", "y", "z")


async def test_expired_relationships_do_not_exist_and_bound_validity() -> None:
    soon = NOW + timedelta(hours=1)
    s = await setup(
        DOCS,
        [
            f"doc:d#viewer@user:old[expiration:{(NOW - timedelta(seconds=1)).isoformat()}]",
            f"doc:d#viewer@user:new[expiration:{soon.isoformat()}]",
            f"doc:d#viewer@user:edge[expiration:{NOW.isoformat()}]",
        ],
    )
    assert await s.decision("doc:d#view@user:old") is DENIED
    assert await s.decision("doc:d#view@user:edge") is DENIED  # expires_at <= now
    result = await s.check("doc:d#view@user:new")
    assert result.decision is ALLOWED
    assert result.valid_until == soon
    assert result.cacheable


async def test_all_arrow_needs_every_target_and_at_least_one() -> None:
    s = await setup(
        DOCS,
        [
            "doc:d#folder@folder:a",
            "doc:d#folder@folder:b",
            "folder:a#viewer@user:ann",
            "folder:b#viewer@user:ann",
            "folder:b#viewer@user:bob",
        ],
    )
    assert await s.decision("doc:d#everywhere@user:ann") is ALLOWED
    assert await s.decision("doc:d#everywhere@user:bob") is DENIED
    assert await s.decision("doc:lonely#everywhere@user:ann") is DENIED


async def test_aliasing_and_self() -> None:
    s = await setup(
        """
        use self
        definition user {
            relation friend: user
            permission me_or_friend = friend + self
        }
        definition doc {
            relation viewer: user
            permission view = viewer
            permission also = view
        }
        """,
        ["user:bob#friend@user:alice"],
    )
    assert await s.decision("doc:x#view@doc:x#view") is ALLOWED
    assert await s.decision("doc:x#also@doc:x#view") is ALLOWED
    assert await s.decision("doc:x#view@doc:x#also") is DENIED
    assert await s.decision("doc:x#view@doc:y#view") is DENIED
    assert await s.decision("user:bob#me_or_friend@user:bob") is ALLOWED
    assert await s.decision("user:bob#me_or_friend@user:alice") is ALLOWED
    assert await s.decision("user:alice#me_or_friend@user:bob") is DENIED


async def test_contextual_relationships_count_but_are_not_cacheable() -> None:
    s = await setup(DOCS, ["doc:d#viewer@group:sso#member"])
    claim = parse_relationship("group:sso#member@user:zed")
    result = await s.check("doc:d#view@user:zed", contextual=[claim])
    assert result.decision is ALLOWED
    assert not result.cacheable
    # only for that request
    assert await s.decision("doc:d#view@user:zed") is DENIED


async def test_contextual_relationships_are_validated() -> None:
    s = await setup(DOCS)
    bad = parse_relationship("doc:d#view@user:zed")  # a permission, not a relation
    with pytest.raises(Exception, match="permission"):
        await s.check("doc:d#view@user:zed", contextual=[bad])


async def test_subject_set_as_subject() -> None:
    s = await setup(
        DOCS,
        ["doc:d#viewer@group:all#member", "group:all#member@group:eng#member"],
    )
    assert await s.decision("doc:d#view@group:eng#member") is ALLOWED
    assert await s.decision("doc:d#view@group:ops#member") is DENIED


async def test_check_bulk_reports_errors_per_item() -> None:
    s = await setup(DOCS, ["doc:d#viewer@user:ann"])
    results = await s.engine.check_bulk(
        s.snap,
        [item("doc:d#view@user:ann"), item("doc:d#nope@user:ann"), item("doc:d#view@user:bob")],
    )
    assert [getattr(r, "decision", None) for r in results] == [ALLOWED, None, DENIED]
    assert "nope" in str(results[1])
