"""Reading SpiceDB validation files (the YAML format of `zed validate`).

    schema: <schema text>
    relationships: <one relationship per line; `//` lines are comments>
    assertions:
      assertTrue / assertFalse / assertCaveated: ["res:id#perm@subj:id[#rel][ with {json}]"]
    validation:
      "res:id#perm": ["[subject] is <res:id#relation>", ...]

`assertions` and `validation` may be absent, `null` or `{}`. Problems in one entry are
collected (each becomes one failure); a file that is not such a document at all raises
`ValidationFileError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from authz_service.engine import CheckItem, Decision
from authz_service.errors import InvalidArgument
from authz_service.model import (
    FrozenContext,
    ObjectRef,
    Relationship,
    parse_object,
    parse_relationship,
)
from authz_service.surrogates import lone_surrogate
from authz_service.unique_yaml import load_unique

__all__ = [
    "Assertion",
    "ExpectedRelations",
    "ValidationFile",
    "ValidationFileError",
    "assertion_item",
    "load_file",
    "parse_file",
]

_EXPECTED = {
    "assertTrue": Decision.ALLOWED,
    "assertFalse": Decision.DENIED,
    "assertCaveated": Decision.CONDITIONAL,
}
_SUBJECT_IN_BRACKETS = re.compile(r"^\s*\[(?P<subject>.+?)\]\s+is\s+")


class ValidationFileError(Exception):
    """The file cannot be read as a validation file at all."""


@dataclass(frozen=True, slots=True)
class Assertion:
    text: str
    expected: Decision
    item: CheckItem


@dataclass(frozen=True, slots=True)
class ExpectedRelations:
    """`subjects` are canonical texts: `user:tom`, `group:eng#member`, `user:tom[...]`
    (conditional), `user:*`, `user:* - {user:a, user:b}`."""

    key: str
    resource: ObjectRef
    permission: str
    subjects: frozenset[str]


@dataclass(slots=True)
class ValidationFile:
    path: str
    schema_text: str
    relationships: list[Relationship] = field(default_factory=list)
    assertions: list[Assertion] = field(default_factory=list)
    expected: list[ExpectedRelations] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (what, message)


def load_file(path: str) -> ValidationFile:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFileError(f"cannot read: {exc}") from None
    return parse_file(path, text)


def parse_file(path: str, text: str) -> ValidationFile:
    try:
        doc = load_unique(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at {where.line + 1}:{where.column + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None)
        raise ValidationFileError(
            f"not valid YAML{at}: {problem}" if problem else f"not valid YAML{at}"
        ) from None
    if not isinstance(doc, dict):
        raise ValidationFileError("expected a YAML mapping with `schema` and `relationships`")
    schema = doc.get("schema")
    if "schemaFile" in doc and schema is None:
        schema = _schema_file(path, doc["schemaFile"])
    if not isinstance(schema, str):
        raise ValidationFileError("`schema` must be a string")
    result = ValidationFile(path, schema)
    _relationships(result, doc.get("relationships"))
    _assertions(result, doc.get("assertions"))
    _expected(result, doc.get("validation"))
    return result


def _schema_file(path: str, name: object) -> str:
    if not isinstance(name, str):
        raise ValidationFileError("`schemaFile` must be a string")
    try:
        return (Path(path).parent / name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFileError(f"cannot read schemaFile `{name}`: {exc}") from None


def _relationships(result: ValidationFile, raw: object) -> None:
    if raw is None:
        return
    if not isinstance(raw, str):
        raise ValidationFileError("`relationships` must be a string, one per line")
    for raw_line in raw.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("//"):
            continue
        try:
            result.relationships.append(parse_relationship(line))
        except InvalidArgument as exc:
            result.problems.append((f"relationship `{line}`", exc.message))


def _assertions(result: ValidationFile, raw: object) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise ValidationFileError("`assertions` must be a mapping")
    for kind, entries in raw.items():
        expected = _EXPECTED.get(str(kind))
        if expected is None:
            result.problems.append((f"assertions `{kind}`", "unknown assertion kind"))
            continue
        for entry in entries or ():
            if not isinstance(entry, str):
                result.problems.append((f"{kind} `{entry}`", "assertion must be a string"))
                continue
            try:
                result.assertions.append(Assertion(entry, expected, assertion_item(entry)))
            except InvalidArgument as exc:
                result.problems.append((entry, exc.message))


def assertion_item(text: str) -> CheckItem:
    """The question of an assertion line: `resource#permission@subject [with {context}]`."""
    rel_text, _, context_text = text.partition(" with ")
    context: dict[str, Any] = {}
    if context_text.strip():
        try:
            loaded = json.loads(context_text)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"context is not valid JSON: {exc.msg}") from None
        if not isinstance(loaded, dict):
            raise InvalidArgument("context must be a JSON object")
        problem = lone_surrogate(loaded, "context")
        if problem is not None:
            raise InvalidArgument(problem)
        context = loaded
    rel = parse_relationship(rel_text, "assertion")
    if rel.caveat is not None or rel.expires_at is not None:
        raise InvalidArgument("an assertion names no caveat or expiration")
    return CheckItem(rel.resource, rel.relation, rel.subject, FrozenContext(context))


def _expected(result: ValidationFile, raw: object) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise ValidationFileError("`validation` must be a mapping")
    for key, entries in raw.items():
        resource_text, _, permission = str(key).partition("#")
        try:
            resource = parse_object(resource_text)
        except InvalidArgument as exc:
            result.problems.append((f"validation `{key}`", exc.message))
            continue
        subjects: set[str] = set()
        for entry in entries or ():
            match = _SUBJECT_IN_BRACKETS.match(str(entry))
            if match is None:
                result.problems.append((f"validation `{key}`", f"cannot read `{entry}`"))
                continue
            subjects.add(canonical_subject(match["subject"]))
        result.expected.append(
            ExpectedRelations(str(key), resource, permission, frozenset(subjects))
        )


def canonical_subject(text: str) -> str:
    """`user:tom#...` -> `user:tom`; `user:* - {user:b, user:a}` -> `user:* - {user:a,
    user:b}`; a trailing `[...]` (conditional) is kept as `[...]`."""
    text = text.strip()
    conditional = text.endswith("]") and "[" in text
    if conditional:
        text = text[: text.rindex("[")].strip()
    base, _, excluded = text.partition(" - ")
    base = base.strip().removesuffix("#...")
    if excluded:
        names = sorted(n.strip().removesuffix("#...") for n in excluded.strip("{} ").split(","))
        base = f"{base} - {{{', '.join(n for n in names if n)}}}"
    return base + ("[...]" if conditional else "")
