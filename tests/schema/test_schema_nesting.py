"""Operators nest at most MAX_EXPRESSION_DEPTH deep: deeper is refused when compiled,
naming the permission and the limit, never a crash. A chain of `-` is left-deep, one level
per `-`; chains of `+` and `&` are one n-ary node. Once `aaa - bbb - ...` of 1,000 terms
(6 KB of schema) crashed the checker with RecursionError (INTERNAL), and 500 compiled but
crashed every Check of it."""

from __future__ import annotations

import pytest

from authz_service.errors import SchemaError
from authz_service.schema import compile_schema, parse_schema, print_schema
from authz_service.service.schemas import SchemaManager
from authz_service.store.memory import MemoryStore

MAX_EXPRESSION_DEPTH = 64  # docs/schema.md, "Permission expressions"


def schema(expr: str) -> str:
    return f"""
definition user {{}}
definition thing {{
    relation aaa: user
    relation bbb: user
    permission ppp = {expr}
}}
"""


def minus_chain(terms: int) -> str:
    return "aaa" + " - bbb" * terms


def nested_minus(levels: int) -> str:
    return "(aaa - " * (levels - 1) + "aaa - bbb" + ")" * (levels - 1)


@pytest.mark.parametrize("terms", [MAX_EXPRESSION_DEPTH + 1, 500, 1_000, 20_000])
def test_a_long_exclusion_chain_is_refused_naming_the_permission_and_the_limit(
    terms: int,
) -> None:
    with pytest.raises(SchemaError) as caught:
        compile_schema(schema(minus_chain(terms)))
    assert caught.value.line == 6
    assert caught.value.detail == (
        f"permission `ppp` of `thing` nests operators {terms} deep, over the limit of "
        f"{MAX_EXPRESSION_DEPTH} (each `-` of a chain adds one: write `a - (b + c + d)` for "
        "`a - b - c - d`)"
    )


def test_nesting_inside_parentheses_counts_too() -> None:
    with pytest.raises(SchemaError, match=r"nests operators 65 deep, over the limit of 64"):
        compile_schema(schema(nested_minus(65)))
    mixed = "aaa - (bbb + (aaa & (bbb - aaa)))" + " - bbb" * (MAX_EXPRESSION_DEPTH - 1)
    with pytest.raises(SchemaError, match=r"nests operators 67 deep"):
        compile_schema(schema(mixed))


@pytest.mark.parametrize(
    "expr",
    [
        minus_chain(MAX_EXPRESSION_DEPTH),
        nested_minus(MAX_EXPRESSION_DEPTH),
        "aaa - (" + " + ".join(["bbb"] * 5_000) + ")",
        " & ".join(["aaa"] * 5_000),
        " + ".join(["aaa", "bbb"] * 2_500),
    ],
)
def test_expressions_within_the_limit_compile_and_print_back(expr: str) -> None:
    compiled = compile_schema(schema(expr))
    assert parse_schema(print_schema(compiled.ast)) == compiled.ast
    assert compile_schema(compiled.text).version == compiled.version


async def test_a_stored_schema_over_the_limit_is_still_loaded() -> None:
    """A schema stored before the limit existed is read back without it, as for the
    caveat limits: refusing it would leave the service without a schema."""
    store = MemoryStore()
    deep = schema(minus_chain(300))
    await store.write_schema("v1", deep)
    schemas = SchemaManager(store)
    await schemas.refresh()
    assert schemas.current.text == compile_schema(deep, max_expression_depth=None).text
    with pytest.raises(SchemaError, match="nests operators 300 deep"):
        await schemas.write(deep)
