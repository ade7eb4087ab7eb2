"""The playground's in-memory world: a schema, relationships and assertions (the three
parts of a validation file), compiled and loaded into a fresh memory store per request,
with every problem placed at its line and column in the part it came from.

Nothing here touches a tenant: this is `authz validate` on text from a form, under the
same engine limits as the server's defaults, and bounded in size. The console runs it on
worker 0, whose event loop serves gRPC too, under a deadline (console/budget.py): `build`
in a worker thread, the evaluation on the loop, yielding to it after every read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import yaml

from authz_service import deadline
from authz_service.engine import CheckItem, CheckResult, Decision, Engine, Snapshot
from authz_service.errors import AuthzError, DeadlineExceeded, InvalidArgument, SchemaError
from authz_service.model import (
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    Revision,
    UpdateOp,
    parse_relationship,
)
from authz_service.schema import CompiledSchema, compile_schema
from authz_service.schema.relationships import check_relationship
from authz_service.service.schemas import DEFAULT_MAX_SCHEMA_BYTES
from authz_service.store.memory import MemoryStore
from authz_service.unique_yaml import load_unique
from authz_service.validation import assertion_item

__all__ = ["MAX_RELATIONSHIPS", "AssertionResult", "Problem", "World", "build"]

TENANT = "playground"
MAX_RELATIONSHIPS = 10_000
_EXCERPT_CHARS = 200
_KINDS = {
    "assertTrue": Decision.ALLOWED,
    "assertFalse": Decision.DENIED,
    "assertCaveated": Decision.CONDITIONAL,
}


class _Store(MemoryStore):
    """A read scans every relationship of the world (milliseconds at 10,000), and the
    engine yields to the event loop only every 128 steps: at that size one stretch held
    the loop, and every gRPC call of the worker, for over a second."""

    async def read(
        self,
        tenant: str,
        revision: Revision,
        flt: RelationshipFilter,
        *,
        limit: int | None = None,
        after: Relationship | None = None,
    ) -> list[Relationship]:
        found = await super().read(tenant, revision, flt, limit=limit, after=after)
        await asyncio.sleep(0)
        return found


@dataclass(frozen=True, slots=True)
class Problem:
    part: str  # "schema", "relationships" or "assertions"
    line: int  # 1-based; 0 when the problem has no place
    column: int
    message: str
    excerpt: str = ""  # the line it is on, to show with a caret under `column`

    @property
    def caret(self) -> str:
        """Spaces up to the column, then `^`, to print under `excerpt`."""
        return " " * (max(self.column, 1) - 1) + "^" if self.column else ""

    @property
    def where(self) -> str:
        if not self.line:
            return self.part
        column = f", column {self.column}" if self.column else ""
        return f"{self.part}, line {self.line}{column}"


@dataclass(frozen=True, slots=True)
class AssertionResult:
    text: str
    line: int
    expected: Decision
    got: Decision | None  # None: the check failed with an error
    detail: str

    @property
    def passed(self) -> bool:
        return self.got is self.expected


@dataclass(frozen=True, slots=True)
class _Assertion:
    text: str
    line: int
    expected: Decision
    item: CheckItem


@dataclass
class World:
    schema: CompiledSchema | None = None
    relationships: list[Relationship] = field(default_factory=list)
    assertions: list[_Assertion] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    _loaded: tuple[Engine, Snapshot] | None = None

    @property
    def ok(self) -> bool:
        return self.schema is not None and not self.problems

    async def snapshot(self) -> tuple[Engine, Snapshot]:
        """The engine over a memory store holding the relationships (once per world)."""
        if self.schema is None:
            raise SchemaError("the schema does not compile")
        if self._loaded is None:
            store = _Store()
            updates = [RelationshipUpdate(UpdateOp.TOUCH, rel) for rel in self.relationships]
            revision = await store.write(TENANT, updates)
            self._loaded = (
                Engine(store),
                Snapshot(TENANT, revision, self.schema, datetime.now(UTC)),
            )
        return self._loaded

    async def check(self, item: CheckItem, *, explain: bool = False) -> CheckResult:
        engine, snap = await self.snapshot()
        if explain:
            return await engine.explain(snap, item)
        return await engine.check(snap, item)

    async def run_assertions(self) -> list[AssertionResult]:
        results = []
        for assertion in self.assertions:
            try:
                result = await self.check(assertion.item)
            except DeadlineExceeded:
                raise  # the run stops: the assertions left are not answered
            except AuthzError as exc:
                results.append(
                    AssertionResult(
                        assertion.text, assertion.line, assertion.expected, None, exc.message
                    )
                )
                continue
            detail = result.decision.value
            if result.missing_context:
                detail += f" (missing {', '.join(result.missing_context)})"
            results.append(
                AssertionResult(
                    assertion.text, assertion.line, assertion.expected, result.decision, detail
                )
            )
        return results


def build(schema_text: str, relationships_text: str, assertions_text: str) -> World:
    """The world the three texts describe, with each problem where it was found."""
    world = World()
    try:
        if len(schema_text.encode()) > DEFAULT_MAX_SCHEMA_BYTES:
            # The server's default AUTHZ_MAX_SCHEMA_BYTES; it bounds the compile's time.
            raise InvalidArgument(f"schema larger than {DEFAULT_MAX_SCHEMA_BYTES} bytes")
        world.schema = compile_schema(schema_text)
    except SchemaError as exc:
        world.problems.append(Problem("schema", exc.line, exc.column, exc.detail))
    except AuthzError as exc:
        world.problems.append(Problem("schema", 0, 0, exc.message))
    _relationships(world, relationships_text)
    _assertions(world, assertions_text)
    texts = {
        "schema": schema_text,
        "relationships": relationships_text,
        "assertions": assertions_text,
    }
    world.problems = [_excerpt(p, texts[p.part]) for p in world.problems]
    return world


def _excerpt(problem: Problem, text: str) -> Problem:
    lines = text.splitlines()
    if not 0 < problem.line <= len(lines):
        return problem
    line = lines[problem.line - 1].expandtabs(1)[:_EXCERPT_CHARS]
    column = problem.column if problem.column <= len(line) + 1 else 0
    return replace(problem, excerpt=line, column=column)


def _relationships(world: World, text: str) -> None:
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("//"):
            continue
        if deadline.remaining() == 0:
            raise DeadlineExceeded("deadline exceeded reading the relationships")
        if len(world.relationships) >= MAX_RELATIONSHIPS:
            world.problems.append(
                Problem("relationships", number, 0, f"more than {MAX_RELATIONSHIPS} relationships")
            )
            return
        try:
            rel = parse_relationship(line)
            if world.schema is not None:
                check_relationship(world.schema, rel)
        except AuthzError as exc:
            world.problems.append(Problem("relationships", number, 0, exc.message))
            continue
        world.relationships.append(rel)


def _assertions(world: World, text: str) -> None:
    try:
        loaded = load_unique(text) if text.strip() else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        problem = getattr(exc, "problem", None)  # a MarkedYAMLError's own words
        why = f"not valid YAML: {problem}" if problem else "not valid YAML"
        world.problems.append(Problem("assertions", line, column, why))
        return
    if loaded is None:
        return
    if not isinstance(loaded, dict):
        world.problems.append(
            Problem(
                "assertions", 1, 0, "expected a mapping: assertTrue, assertFalse, assertCaveated"
            )
        )
        return
    lines = text.splitlines()
    for kind, entries in loaded.items():
        expected = _KINDS.get(str(kind))
        if expected is None:
            world.problems.append(
                Problem("assertions", _line_of(lines, str(kind)), 0, f"unknown kind `{kind}`")
            )
            continue
        for entry in entries if isinstance(entries, list) else [entries]:
            number = _line_of(lines, str(entry))
            try:
                item = _item(entry)
            except AuthzError as exc:
                world.problems.append(Problem("assertions", number, 0, exc.message))
                continue
            world.assertions.append(_Assertion(str(entry), number, expected, item))


def _line_of(lines: list[str], needle: str) -> int:
    """The first line holding `needle` (YAML has already dropped positions)."""
    return next((i for i, line in enumerate(lines, start=1) if needle in line), 0)


def _item(entry: Any) -> CheckItem:
    if not isinstance(entry, str):
        raise InvalidArgument(f"an assertion is a string, not `{entry}`")
    return assertion_item(entry)
