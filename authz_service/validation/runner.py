"""Running validation files: schema, relationships, assertions, expected relations, and
cross-API agreement, each in a fresh in-memory store (tenant `validation`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from authz_service.engine import Decision, Engine, Snapshot
from authz_service.errors import AuthzError
from authz_service.model import RelationshipUpdate, UpdateOp
from authz_service.schema import compile_schema
from authz_service.schema.relationships import check_relationship
from authz_service.store.memory import MemoryStore
from authz_service.validation.agreement import check_agreement
from authz_service.validation.expected import check_expected
from authz_service.validation.files import ValidationFile, ValidationFileError, load_file
from authz_service.validation.report import FileReport

__all__ = ["TENANT", "run_file", "run_files", "run_loaded"]

TENANT = "validation"


async def run_files(paths: Sequence[str], *, agreement: bool = True) -> list[FileReport]:
    return [await run_file(path, agreement=agreement) for path in paths]


async def run_file(path: str, *, agreement: bool = True) -> FileReport:
    try:
        loaded = load_file(path)
    except ValidationFileError as exc:
        report = FileReport(path)
        report.fail("file", str(exc))
        return report
    try:
        return await run_loaded(loaded, agreement=agreement)
    except Exception as exc:  # a bug, not the file's fault: still one line, no traceback
        report = FileReport(path)
        report.fail("internal error", f"{type(exc).__name__}: {exc}")
        return report


async def run_loaded(
    loaded: ValidationFile, *, agreement: bool = True, now: datetime | None = None
) -> FileReport:
    report = FileReport(loaded.path)
    for what, message in loaded.problems:
        report.fail(what, message)
    try:
        schema = compile_schema(loaded.schema_text)
    except AuthzError as exc:  # SchemaError: "3:5: unknown ..." (line:column in the schema)
        report.fail("schema", exc.message, separator=" ")
        return report
    valid = not any(what.startswith("relationship ") for what, _ in loaded.problems)
    for rel in loaded.relationships:
        try:
            check_relationship(schema, rel)
        except AuthzError as exc:
            report.fail(f"relationship `{rel}`", exc.message)
            valid = False
    if not valid:
        return report  # answers over a partial data set would mislead
    store = MemoryStore()
    try:
        revision = await store.write(
            TENANT, [RelationshipUpdate(UpdateOp.CREATE, rel) for rel in loaded.relationships]
        )
    except AuthzError as exc:
        report.fail("relationships", exc.message)
        return report
    engine = Engine(store)
    snap = Snapshot(TENANT, revision, schema, now or datetime.now(UTC))
    for assertion in loaded.assertions:
        try:
            result = await engine.check(snap, assertion.item)
        except AuthzError as exc:
            report.fail(assertion.text, f"expected {assertion.expected.value}, got error: {exc}")
            continue
        got = result.decision
        detail = got.value
        if got is Decision.CONDITIONAL:
            detail += f" (missing {', '.join(result.missing_context)})"
        report.expect(
            got is assertion.expected,
            assertion.text,
            f"expected {assertion.expected.value}, got {detail}",
        )
    await check_expected(engine, snap, loaded, report)
    if agreement:
        await check_agreement(engine, snap, loaded, report)
    return report
