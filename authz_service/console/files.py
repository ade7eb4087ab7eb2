"""Validation files in and out of the playground: one YAML document with `schema`,
`relationships` and `assertions` (the format of `authz validate` and `zed validate`)."""

from __future__ import annotations

from typing import Any

import yaml

from authz_service.errors import InvalidArgument
from authz_service.unique_yaml import load_unique

__all__ = ["MAX_FILE_BYTES", "export_file", "import_file"]

MAX_FILE_BYTES = 1 << 20


class _Literal(str):
    """A string written as a YAML block (`|`), so a schema stays readable."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal)


def export_file(schema: str, relationships: str, assertions: str) -> str:
    """The three texts as one validation file. Assertions that are not valid YAML are
    refused (the playground shows why) rather than written as a broken file."""
    doc: dict[str, Any] = {
        "schema": _Literal(_block(schema)),
        "relationships": _Literal(_block(relationships)),
    }
    try:
        parsed = load_unique(assertions) if assertions.strip() else None
    except yaml.YAMLError:
        raise InvalidArgument("assertions are not valid YAML", field="assertions") from None
    if parsed is not None:
        doc["assertions"] = parsed
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)


def _block(text: str) -> str:
    # Block scalars cannot keep trailing spaces on a line; they carry no meaning here.
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"


def import_file(text: str) -> dict[str, str]:
    """The three texts of a validation file; InvalidArgument naming what is wrong."""
    if len(text.encode()) > MAX_FILE_BYTES:
        raise InvalidArgument(f"file larger than {MAX_FILE_BYTES} bytes", field="file")
    try:
        doc = load_unique(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)  # a MarkedYAMLError's own words
        why = f": {problem}" if problem else ""
        raise InvalidArgument(f"the file is not valid YAML{at}{why}", field="file") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("schema"), str):
        raise InvalidArgument("expected a validation file: a mapping with `schema`", field="file")
    relationships = doc.get("relationships") or ""
    if not isinstance(relationships, str):
        raise InvalidArgument("`relationships` must be text, one per line", field="file")
    assertions = doc.get("assertions")
    return {
        "schema": doc["schema"],
        "relationships": relationships,
        "assertions": "" if not assertions else yaml.safe_dump(assertions, sort_keys=False),
    }
