"""The playground's in-memory world: problems placed at their part, line and column."""

from __future__ import annotations

from authz_service.console import sandbox
from authz_service.demo import demo_relationships, demo_schema

RELATIONSHIPS = "\n".join(demo_relationships())


def test_a_schema_error_is_shown_at_its_line_with_a_caret_under_its_column() -> None:
    schema = demo_schema().replace("relation member: user |", "relation member: usr |")
    world = sandbox.build(schema, RELATIONSHIPS, "")
    [problem] = [p for p in world.problems if p.part == "schema"]
    assert (problem.line, problem.column) == (10, 22)
    assert problem.excerpt == "    relation member: usr | group#member"
    assert problem.excerpt[len(problem.caret) - 1 :].startswith("usr")
    assert problem.where == "schema, line 10, column 22"


def test_relationship_and_assertion_problems_name_their_own_lines() -> None:
    relationships = "document:readme#owner@user:alice\n\ndocument:readme#nope@user:bob\n"
    assertions = "assertTrue:\n  - document:readme#view@user:alice\n  - not a relationship\n"
    world = sandbox.build(demo_schema(), relationships, assertions)
    where = {(p.part, p.line) for p in world.problems}
    assert where == {("relationships", 3), ("assertions", 3)}
    assert len(world.relationships) == 1
    assert len(world.assertions) == 1


async def test_a_valid_world_runs_its_assertions() -> None:
    assertions = "assertTrue:\n  - document:readme#view@user:alice\nassertFalse:\n  - document:roadmap#view@user:bob\n"
    world = sandbox.build(demo_schema(), RELATIONSHIPS, assertions)
    assert world.ok
    results = await world.run_assertions()
    assert [r.passed for r in results] == [True, True]
    assert [r.line for r in results] == [2, 4]


def test_an_assertion_key_given_twice_is_a_problem_at_its_line() -> None:
    # YAML keeps the last `assertTrue`: the first list would never be checked.
    world = sandbox.build(
        "definition user {}\ndefinition doc { relation viewer: user }",
        "doc:d#viewer@user:ann",
        "assertTrue:\n  - doc:d#viewer@user:ann\nassertTrue: []\n",
    )
    [problem] = world.problems
    assert (problem.part, problem.line) == ("assertions", 3)
    assert "duplicate key `assertTrue`" in problem.message
