"""Cases where a differential run against real SpiceDB (v1.54) found us answering
differently; the expected answers are SpiceDB's."""

from __future__ import annotations

from authz_service.engine import Decision, ExcludedSubject, SubjectResult
from authz_service.model import EMPTY_CONTEXT, FrozenContext, ObjectRef

from .helpers import setup

BANNED = """
definition user {}
caveat cav(n int) { n < 3 }
definition document {
    relation owner: user:*
    relation banned: user with cav | user
    permission delete = owner - banned
}
"""


async def _subjects(schema: str, rels: list[str], context: FrozenContext) -> list[SubjectResult]:
    s = await setup(schema, rels)
    return [
        x
        async for x in s.engine.lookup_subjects(
            s.snap, ObjectRef("document", "d"), "delete", "user", context
        )
    ]


async def test_a_wildcard_lists_conditionally_excluded_subjects_with_their_decision() -> None:
    rels = [
        "document:d#owner@user:*",
        "document:d#banned@user:u3[cav]",
        "document:d#banned@user:u5",
    ]
    found = await _subjects(BANNED, rels, EMPTY_CONTEXT)
    # SpiceDB: `*` excluding u5 (for certain) and u3 (conditionally, needs `n`); u3 is not
    # listed on its own, so nobody reading the wildcard concludes that u3 may delete.
    assert found == [
        SubjectResult(
            "*",
            Decision.ALLOWED,
            (),
            (
                ExcludedSubject("u3", Decision.CONDITIONAL, ("n",)),
                ExcludedSubject("u5", Decision.DENIED),
            ),
        )
    ]
    assert found[0].excluded_subject_ids == ("u3", "u5")
    # With the context given the condition is decided: n=1 bans u3, n=7 does not.
    banned = await _subjects(BANNED, rels, FrozenContext({"n": 1}))
    assert [e.subject_id for e in banned[0].excluded_subjects] == ["u3", "u5"]
    assert {e.decision for e in banned[0].excluded_subjects} == {Decision.DENIED}
    free = await _subjects(BANNED, rels, FrozenContext({"n": 7}))
    assert free[0].excluded_subjects == (ExcludedSubject("u5", Decision.DENIED),)


CONTAINERS = """
definition user {}
definition project {
    relation container: project
    relation reader: user
    permission view = container.all(reader) - (container->view & reader)
}
"""


async def test_a_subtracted_intersection_with_an_empty_direct_side_settles() -> None:
    s = await setup(
        CONTAINERS,
        [
            "project:p1#container@project:p1",
            "project:p2#container@project:p1",
            "project:p1#reader@user:u4",
        ],
    )
    # p2 has no reader, so `container->view & reader` is empty for it whatever p1's view
    # is: SpiceDB answers ALLOWED without settling p1's (paradoxical) view.
    assert await s.decision("project:p2#view@user:u4") is Decision.ALLOWED
    explained = await s.check("project:p2#view@user:u4", explain=True)
    assert explained.decision is Decision.ALLOWED


FORCED = """
definition user {}
caveat cav(n int) { n < 3 }
definition group {
    relation member: user
}
definition document {
    relation parent: group
    relation viewer: user | group#member
    permission view = viewer + parent->member
}
"""


async def test_relationships_a_forced_schema_change_orphaned_grant_nothing() -> None:
    # Stored under an older schema that allowed `user:*`, `user with cav`, `user with
    # expiration` and `group#member with cav`; the current one (written with force)
    # allows none of these shapes, and the proto promises they grant nothing.
    s = await setup(
        FORCED,
        [
            "document:d#viewer@user:*",
            "document:d#viewer@user:ann[cav]",
            "document:d#viewer@user:bob[expiration:2999-01-01T00:00:00Z]",
            "document:d#viewer@group:eng#member[cav]",
            "group:eng#member@user:cat",
            "document:d#parent@group:ops[cav]",
            "group:ops#member@user:dan",
        ],
    )
    for user in ("zed", "ann", "cat", "dan"):
        result = await s.check(f"document:d#view@user:{user}", {"n": 1})
        assert result.decision is Decision.DENIED, user
    # An expiration is not judged against the schema: bob's relationship (a plain `user`,
    # still allowed) counts until it expires.
    assert await s.decision("document:d#view@user:bob") is Decision.ALLOWED
