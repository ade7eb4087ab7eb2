"""The oracle, checked by hand on cases whose answers are easy to see."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from authz_service.model import ObjectRef, SubjectRef, parse_relationship
from authz_service.schema import parse_schema

from .evaluator import F, T, Value, World, decision

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _over(ctx: Mapping[str, Any]) -> Value:
    if "x" not in ctx:
        return (1, frozenset({"x"}))
    return T if ctx["x"] > 5 else F


SCHEMA = parse_schema(
    """
    definition user {}
    caveat over(x int) { x > 5 }
    definition group {
        relation member: user | user:* | user with over | group#member
    }
    definition doc {
        relation parent: group
        relation viewer: user | group#member
        relation banned: user
        permission view = viewer - banned
        permission all_members = parent.all(member)
        permission own = nil
    }
    """
)


def world(rels: list[str]) -> World:
    objects = {"user": ["ann", "bob", "new"], "group": ["a", "b", "c"], "doc": ["d"]}
    return World(SCHEMA, [parse_relationship(r) for r in rels], NOW, {"over": _over}, objects)


def value(w: World, node: str, subject: str, ctx: Mapping[str, Any] | None = None) -> str:
    obj, _, name = node.partition("#")
    otype, _, oid = obj.partition(":")
    stype, _, rest = subject.partition(":")
    sid, _, srel = rest.partition("#")
    table = w.solve(SubjectRef(stype, sid, srel), ctx or {})
    return decision(table.get((ObjectRef(otype, oid), name), F))


def test_cycles_are_least_fixpoints() -> None:
    w = world(["group:a#member@group:b#member", "group:b#member@group:a#member"])
    assert value(w, "group:a#member", "user:ann") == "DENIED"
    w = world(
        [
            "group:a#member@group:b#member",
            "group:b#member@group:a#member",
            "group:b#member@user:ann",
        ]
    )
    assert value(w, "group:a#member", "user:ann") == "ALLOWED"
    assert w.near_cycle()


def test_exclusion_wildcard_caveat_expiry() -> None:
    past = (NOW - timedelta(days=1)).isoformat()
    w = world(
        [
            "doc:d#viewer@group:a#member",
            "group:a#member@user:*",
            "doc:d#banned@user:bob",
            "group:b#member@user:ann[over]",
            f"group:c#member@user:ann[expiration:{past}]",
        ]
    )
    assert value(w, "doc:d#view", "user:new") == "ALLOWED"
    assert value(w, "doc:d#view", "user:bob") == "DENIED"
    assert value(w, "group:b#member", "user:ann") == "CONDITIONAL"
    assert value(w, "group:b#member", "user:ann", {"x": 9}) == "ALLOWED"
    assert value(w, "group:c#member", "user:ann") == "DENIED"
    # a userset is a member of itself; a wildcard never matches a subject set
    assert value(w, "group:a#member", "group:a#member") == "ALLOWED"
    assert value(w, "group:a#member", "group:b#member") == "DENIED"


def test_all_arrow_and_nil() -> None:
    w = world(
        [
            "doc:d#parent@group:a",
            "doc:d#parent@group:b",
            "group:a#member@user:ann",
            "group:b#member@user:ann",
            "group:b#member@user:bob",
        ]
    )
    assert value(w, "doc:d#all_members", "user:ann") == "ALLOWED"
    assert value(w, "doc:d#all_members", "user:bob") == "DENIED"
    assert value(w, "doc:d#own", "user:ann") == "DENIED"
    assert value(world([]), "doc:d#all_members", "user:ann") == "DENIED"


def test_refuses_exclusion_on_a_cycle() -> None:
    schema = parse_schema(
        """
        definition user {}
        definition group {
            relation member: user | group#loop
            relation banned: user
            permission excluded = member
            permission loop = banned - excluded
        }
        """
    )
    with pytest.raises(ValueError, match="exclusion inside a cycle"):
        World(schema, [], NOW, {}, {}).components()
