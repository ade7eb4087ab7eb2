"""Golden tests: each `golden/NAME.zed` either compiles, and its canonical printed form must
equal `NAME.printed.zed`, or fails, and its error message must equal `NAME.error.txt`.

A mismatch fails. `UPDATE_GOLDEN=1 pytest tests/schema` rewrites the expected files; review
the diff before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from authz_service.errors import SchemaError
from authz_service.schema import compile_schema, parse_schema, print_schema

GOLDEN = Path(__file__).parent / "golden"
INPUTS = sorted(p for p in GOLDEN.glob("*.zed") if not p.name.endswith(".printed.zed"))
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def _outcome(source: str) -> tuple[str, str]:
    try:
        compiled = compile_schema(source)
    except SchemaError as exc:
        return "error.txt", str(exc) + "\n"
    return "printed.zed", compiled.text


@pytest.mark.parametrize("path", INPUTS, ids=[p.stem for p in INPUTS])
def test_golden(path: Path) -> None:
    suffix, actual = _outcome(path.read_text())
    expected_path = path.with_name(f"{path.stem}.{suffix}")
    other = path.with_name(f"{path.stem}.{'printed.zed' if suffix == 'error.txt' else 'error.txt'}")
    if UPDATE:
        expected_path.write_text(actual)
        other.unlink(missing_ok=True)
    assert not other.exists(), f"{path.name} now gives a {suffix}, but {other.name} exists"
    assert expected_path.exists(), f"missing {expected_path.name}; run with UPDATE_GOLDEN=1"
    assert actual == expected_path.read_text()


@pytest.mark.parametrize(
    "path",
    [p for p in INPUTS if p.with_name(f"{p.stem}.printed.zed").exists()],
    ids=lambda p: p.stem,
)
def test_printed_golden_is_a_fixed_point(path: Path) -> None:
    printed = path.with_name(f"{path.stem}.printed.zed").read_text()
    assert print_schema(parse_schema(printed)) == printed
    assert parse_schema(printed) == parse_schema(path.read_text())


def test_every_golden_output_has_an_input() -> None:
    outputs = [*GOLDEN.glob("*.printed.zed"), *GOLDEN.glob("*.error.txt")]
    stems = {p.name.split(".")[0] for p in outputs}
    assert stems <= {p.stem for p in INPUTS}
