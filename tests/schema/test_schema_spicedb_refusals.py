"""Schemas real SpiceDB (v1.54) refuses, found loading here by a differential run: each is
refused with SpiceDB's reason and the line:column of the offending input."""

from __future__ import annotations

import pytest

from authz_service.errors import SchemaError
from authz_service.schema import compile_schema
from authz_service.service.schemas import SchemaManager
from authz_service.store.memory import MemoryStore

USER = "definition user {}\n"


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        (  # a subject set whose relation allows a wildcard
            USER + "definition group {\n  relation member: user:*\n}\n"
            "definition document {\n  relation viewer: group#member\n}\n",
            (6, 20),
            "relation `group#member` allows wildcard `user:*`; wildcard relations cannot be "
            "transitively included, in relation `viewer` of `document`",
        ),
        (  # ... also when only used on the left of an arrow
            USER + "definition group {\n  relation member: user | user:*\n"
            "  permission view = member\n}\n"
            "definition document {\n  relation parent: group#member\n"
            "  permission view = parent->view\n}\n",
            (7, 20),
            "wildcard relations cannot be transitively included, in relation `parent`",
        ),
        (  # a uint parameter compared with a uint literal
            "caveat small(n uint) {\n  n < 3u\n}\n" + USER,
            (1, 8),
            "applies `<` to `uint` parameter `n` and the uint literal `3u`",
        ),
        (
            "caveat small(n uint) {\n  10u >= n || n + 1u == 4\n}\n" + USER,
            (1, 8),
            "applies `>=` to `uint` parameter `n` and the uint literal `10u`",
        ),
        (  # a parameter named like a CEL type
            "caveat check(int int) {\n  int < 3\n}\n" + USER,
            (1, 8),
            "parameter `int` overlaps the CEL identifier `int`",
        ),
        (
            "caveat check(string string, list list<int>) {\n  string == 'a'\n}\n" + USER,
            (1, 8),
            "parameter `string` overlaps the CEL identifier `string`",
        ),
        (  # SpiceDB's keywords as names
            USER + "definition document {\n  relation relation: user\n}\n",
            (3, 12),
            "`relation` is a keyword and cannot be a relation name",
        ),
        (
            USER + "definition document {\n  relation viewer: user\n"
            "  permission permission = viewer\n}\n",
            (4, 14),
            "`permission` is a keyword and cannot be a permission name",
        ),
        (
            "definition definition {}\n",
            (1, 12),
            "`definition` is a keyword and cannot be a definition name",
        ),
        (
            "definition org/caveat {}\n",
            (1, 12),
            "`caveat` is a keyword and cannot be a definition name",
        ),
        (
            "caveat with(n int) {\n  n < 3\n}\n",
            (1, 8),
            "`with` is a keyword and cannot be a caveat name",
        ),
        (  # a call to a function CEL does not define (`startsWith` is)
            "caveat name_ok(name string) {\n  name.startswith('a')\n}\n" + USER,
            (1, 8),
            "caveat `name_ok` calls undefined function `startswith` at 1:6",
        ),
        (
            "caveat name_ok(name string) {\n  no_such_function(name)\n}\n" + USER,
            (1, 8),
            "caveat `name_ok` calls undefined function `no_such_function` at 1:1",
        ),
        (
            "caveat check(nil int) {\n  nil < 3\n}\n",
            (1, 14),
            "`nil` is a keyword and cannot be a parameter name",
        ),
    ],
)
def test_a_schema_spicedb_refuses_is_refused_with_its_reason(
    text: str, where: tuple[int, int], reason: str
) -> None:
    with pytest.raises(SchemaError) as info:
        compile_schema(text)
    assert (info.value.line, info.value.column) == where, info.value
    assert reason in info.value.detail, info.value


@pytest.mark.parametrize(
    "text",
    [
        # a subject set naming a permission over a wildcard relation: SpiceDB accepts it
        USER + "definition group {\n  relation member: user:*\n  permission mem = member\n}\n"
        "definition document {\n  relation viewer: group#mem\n}\n",
        # an arrow over a relation whose target allows a wildcard: accepted too
        USER + "definition group {\n  relation member: user:*\n}\n"
        "definition document {\n  relation parent: group\n  permission view = parent->member\n}\n",
        "caveat small(n uint) {\n  n < 3 && uint(n) < 3u && 'n < 3u' != ''\n}\n" + USER,
        "caveat check(timestamp timestamp, ipaddress ipaddress) {\n  ipaddress.in_cidr('10.0.0.0/8')"
        " && timestamp == timestamp\n}\n" + USER,
        USER + "definition document {\n  relation with_container: user\n"
        "  permission user = with_container\n}\ndefinition token {}\n",
    ],
)
def test_what_spicedb_accepts_still_loads(text: str) -> None:
    assert compile_schema(text)


async def test_a_stored_caveat_calling_an_undefined_function_is_still_loaded() -> None:
    """Refused when written, but a schema stored before that check existed is read back:
    refusing it would leave the service without a schema (as for the limits)."""
    store = MemoryStore()
    text = "caveat name_ok(name string) {\n  name.startswith('a')\n}\n" + USER
    await store.write_schema("v1", text)
    schemas = SchemaManager(store)
    await schemas.refresh()
    assert "name_ok" in schemas.current.caveats
    with pytest.raises(SchemaError, match="calls undefined function `startswith`"):
        await schemas.write(text)
