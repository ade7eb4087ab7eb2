"""The public API of `authz_service.schema`: exports, compiled indexes, versions, diffs."""

from __future__ import annotations

import pytest

import authz_service.schema as schema_api
from authz_service.errors import InvalidArgument, SchemaError
from authz_service.model import RelationshipKind
from authz_service.schema import (
    compile_schema,
    orphaned_kinds,
    orphaned_relationships,
    parse_schema,
)
from authz_service.schema.ast import Arrow, RelationRef, Union

SOURCE = """
use expiration

definition user {}

definition group {
  relation member: user | group#member with expiration
}

caveat weekday(day string, days list < string >) { day in days }

definition document {
  relation parent: document
  relation viewer: user | user:* with weekday | group#member
  inherit parent
  nondelegable permission delete = nil
  permission view = viewer + parent->view
}

role reader { document.view }
"""


def test_public_api_is_pinned() -> None:
    assert sorted(schema_api.__all__) == [
        "CompiledSchema",
        "Schema",
        "compile_ast",
        "compile_schema",
        "orphaned_kinds",
        "orphaned_relationships",
        "parse_schema",
        "print_expr",
        "print_schema",
    ]


def test_compiled_indexes() -> None:
    compiled = compile_schema(SOURCE)
    assert set(compiled.definitions) == {"user", "group", "document"}
    assert compiled.relations[("document", "viewer")].allowed[1].caveat == "weekday"
    view = compiled.permissions[("document", "view")]
    assert view.expr == Union((RelationRef("viewer"), Arrow("parent", "view")))
    assert not compiled.permissions[("document", "delete")].delegable
    assert compiled.definitions["document"].inherits == ("parent",)
    assert compiled.member("document", "parent") is compiled.relations[("document", "parent")]
    assert compiled.member("document", "nope") is None
    assert set(compiled.caveats) == {"weekday"}
    assert compiled.roles["reader"].permissions == (("document", "view"),)
    with pytest.raises(TypeError):
        compiled.definitions["x"] = compiled.definitions["user"]  # type: ignore[index]


def test_caveat_parameter_types_are_canonical_in_the_compiled_ast() -> None:
    compiled = compile_schema(SOURCE)
    assert compiled.ast.caveats[0].parameters == (("day", "string"), ("days", "list<string>"))
    assert "caveat weekday(day string, days list<string>) {" in compiled.text


def test_version_ignores_layout_and_comments_but_not_meaning() -> None:
    compiled = compile_schema(SOURCE)
    assert len(compiled.version) == 16
    assert int(compiled.version, 16) >= 0
    relaid = "// a comment\n" + SOURCE.replace("\n  ", "\n\t\t").replace(" + ", "+")
    assert compile_schema(relaid).version == compiled.version
    assert compile_schema(compiled.text).version == compiled.version
    changed = SOURCE.replace("viewer + parent->view", "parent->view + viewer")
    assert compile_schema(changed).version != compiled.version


def test_schema_error_is_an_invalid_argument_with_a_position() -> None:
    with pytest.raises(InvalidArgument) as info:
        compile_schema("definition user {\n  relation friend: usr\n}")
    error = info.value
    assert isinstance(error, SchemaError)
    assert (error.line, error.column) == (2, 20)
    assert error.detail == "unknown definition `usr` in relation `friend` of `user`"


def test_compile_ast_accepts_a_parsed_schema() -> None:
    assert schema_api.compile_ast(parse_schema(SOURCE)) == compile_schema(SOURCE)


def test_orphaned_relationships() -> None:
    new = compile_schema(
        """
        definition user {}
        definition group { relation member: user }
        definition document {
          relation viewer: user | user:*
          permission editor = viewer
        }"""
    )
    kinds = [
        RelationshipKind("document", "viewer", "user", ""),
        RelationshipKind("document", "viewer", "user", "..."),
        RelationshipKind("document", "viewer", "user", wildcard=True),
        RelationshipKind("document", "viewer", "group", "member"),
        RelationshipKind("document", "viewer", "user", caveat="cav"),
        RelationshipKind("document", "viewer", "user", wildcard=True, expiring=True),
        RelationshipKind("document", "editor", "user", ""),
        RelationshipKind("document", "owner", "user", ""),
        RelationshipKind("folder", "viewer", "user", ""),
        RelationshipKind("group", "member", "user", ""),
    ]
    assert orphaned_relationships(new, kinds) == [
        "relation `document#editor` is now a permission but relationships "
        "`document#editor@user` exist",
        "relation `document#owner` is removed but relationships `document#owner@user` exist",
        "subject type `group#member` is no longer allowed on `document#viewer` but "
        "relationships `document#viewer@group#member` exist",
        "subject type `user with cav` is no longer allowed on `document#viewer` but "
        "relationships `document#viewer@user with cav` exist",
        "subject type `user:* with expiration` is no longer allowed on `document#viewer` but "
        "relationships `document#viewer@user:* with expiration` exist",
        "definition `folder` is removed but relationships `folder#viewer@user` exist",
    ]
    assert orphaned_relationships(new, []) == []
    assert orphaned_kinds(new, kinds) == [
        "document#editor@user",
        "document#owner@user",
        "document#viewer@group#member",
        "document#viewer@user with cav",
        "document#viewer@user:* with expiration",
        "folder#viewer@user",
    ]
