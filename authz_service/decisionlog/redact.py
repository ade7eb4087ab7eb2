"""Redaction of request context before a record is hashed.

Paths are a small JSONPath subset: `$` followed by `.member` steps (`$.ssn`,
`$.card.number`). Redaction happens before hashing on purpose: the chain then proves
the redacted record, and the secret never reaches disk. The record lists the paths
that were actually present and replaced, so a reader knows the context is incomplete.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from authz_service.decisionlog.check_record import EncodedCheck
from authz_service.decisionlog.record import DecisionRecord
from authz_service.errors import InvalidArgument, echo

__all__ = ["REDACTED_MARKER", "Redactor", "parse_path"]

REDACTED_MARKER = "[REDACTED]"

_PATH_RE = re.compile(r"\$(?:\.[^.\[\]\s]+)+")


def parse_path(path: str) -> tuple[str, ...]:
    """`$.card.number` -> ("card", "number")."""
    if not _PATH_RE.fullmatch(path):
        raise InvalidArgument(
            f"`{echo(path)}` is not a redaction path (expected `$.member.member`)",
            field="redact_paths",
            value=path,
        )
    return tuple(path[2:].split("."))


class Redactor:
    """Replaces configured context paths with `REDACTED_MARKER`. Immutable after init."""

    __slots__ = ("_paths",)

    def __init__(self, paths: Iterable[str]) -> None:
        self._paths = tuple((p, parse_path(p)) for p in sorted(set(paths)))

    def __bool__(self) -> bool:
        return bool(self._paths)

    def covers(self, context: Mapping[str, Any]) -> bool:
        """Whether `apply` would replace a value of this context: what a record with it
        must not state anywhere else (an error message quoting the context)."""
        return any(_holder(context, steps) is not None for _, steps in self._paths)

    def apply(self, record: DecisionRecord | EncodedCheck) -> DecisionRecord | EncodedCheck:
        """A copy of `record` with configured paths redacted and listed in `redacted`.

        Paths the context does not contain are not listed: the list states what was
        removed, not what the configuration mentions. An `EncodedCheck` with a context
        is decoded first (it is redacted as the same `DecisionRecord` would be).
        """
        if not self._paths or not _has_context(record):
            return record
        plain = record.decode() if isinstance(record, EncodedCheck) else record
        context: dict[str, Any] = copy.deepcopy(dict(plain.context))
        hit = [text for text, steps in self._paths if _replace(context, steps)]
        if not hit:
            return record
        return dataclasses.replace(
            plain, context=context, redacted=tuple(plain.redacted) + tuple(hit)
        )


def _has_context(record: DecisionRecord | EncodedCheck) -> bool:
    return record.has_context if isinstance(record, EncodedCheck) else bool(record.context)


def _holder(node: Mapping[str, Any], steps: tuple[str, ...]) -> Mapping[str, Any] | None:
    """The object holding the path's last member, if the path is present."""
    for step in steps[:-1]:
        child = node.get(step)
        if not isinstance(child, Mapping):
            return None
        node = child
    return node if steps[-1] in node else None


def _replace(node: dict[str, Any], steps: tuple[str, ...]) -> bool:
    holder = _holder(node, steps)
    if not isinstance(holder, dict):  # a deep copy: every object in it is a dict
        return False
    holder[steps[-1]] = REDACTED_MARKER
    return True
