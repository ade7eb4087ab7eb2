"""Every schema in the SpiceDB conformance corpus compiles and prints to a fixed point."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from authz_service.schema import compile_schema, parse_schema, print_schema
from tests.conformance.corpus import CORPUS, corpus_files

FILES = corpus_files()


def _schema_text(path: Path) -> str:
    text = yaml.safe_load(path.read_text())["schema"]
    assert isinstance(text, str)
    return text


def test_corpus_is_present() -> None:
    assert len(FILES) > 50, f"conformance corpus not found under {CORPUS}"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_conformance_schema_compiles_and_round_trips(path: Path) -> None:
    source = _schema_text(path)
    compiled = compile_schema(source)
    printed = print_schema(parse_schema(source))
    assert printed == compiled.text
    assert parse_schema(printed) == parse_schema(source)
    assert print_schema(parse_schema(printed)) == printed
    assert compile_schema(printed).version == compiled.version
