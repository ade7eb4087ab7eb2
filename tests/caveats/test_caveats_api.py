"""The public surface of `authz_service.caveats`, pinned so changes are deliberate."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from authz_service import caveats


def test_public_names_are_pinned() -> None:
    assert sorted(caveats.__all__) == [
        "CaveatResult",
        "CaveatType",
        "CompiledCaveat",
        "canonical_caveat_type_text",
        "compile_caveat",
        "parse_caveat_type",
    ]
    for name in caveats.__all__:
        assert getattr(caveats, name) is not None


def test_compiled_caveat_is_immutable_and_compares_by_definition() -> None:
    first = caveats.compile_caveat("c", [("x", "int")], "x == 1")
    second = caveats.compile_caveat("c", [("x", "int")], "x == 1")
    assert first == second
    assert hash(first) == hash(second)
    assert first != caveats.compile_caveat("c", [("x", "int")], "x == 2")
    assert first.parameters == (("x", caveats.CaveatType("int")),)
    assert first.expression == "x == 1"
    with pytest.raises(FrozenInstanceError):
        first.name = "d"  # type: ignore[misc]
