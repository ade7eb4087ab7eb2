"""Cross-API agreement: ListPermissions, LookupResources and LookupSubjects must say
exactly what Check says, for every (resource, permission or relation, subject) of a file.

Resources are all objects named in the file; subjects are all non-wildcard subjects
named in it (objects and subject sets), plus one fresh subject per type that has a
wildcard relationship (so wildcard answers are exercised too). Every comparison counts as
one check. Each lookup is also paged (two per page) and must give the same stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from authz_service.engine import CheckItem, CheckResult, Decision, Engine, Snapshot
from authz_service.errors import AuthzError
from authz_service.model import EMPTY_CONTEXT, WILDCARD, ObjectRef, SubjectRef
from authz_service.validation.files import ValidationFile
from authz_service.validation.report import FileReport

__all__ = ["FRESH_SUBJECT_ID", "check_agreement"]

FRESH_SUBJECT_ID = "fresh_subject_named_nowhere"
Answer = tuple[Decision, tuple[str, ...]]
DENIED: Answer = (Decision.DENIED, ())
T = TypeVar("T")


def _show(answer: Answer) -> str:
    decision, missing = answer
    return decision.value + (f" (missing {', '.join(missing)})" if missing else "")


def _answer(result: CheckResult) -> Answer:
    return (result.decision, result.missing_context)


@dataclass(slots=True)
class _World:
    engine: Engine
    snap: Snapshot
    report: FileReport
    resources: list[ObjectRef]
    subjects: list[SubjectRef]
    truth: dict[tuple[ObjectRef, str, SubjectRef], Answer] = field(default_factory=dict)

    def members(self, type_name: str) -> list[str]:
        definition = self.snap.schema.definitions[type_name]
        return [r.name for r in definition.relations] + [p.name for p in definition.permissions]

    async def check(self, resource: ObjectRef, name: str, subject: SubjectRef) -> Answer | None:
        key = (resource, name, subject)
        if key not in self.truth:
            try:
                result = await self.engine.check(self.snap, CheckItem(resource, name, subject))
            except AuthzError as exc:
                self.report.fail(f"Check `{resource}#{name}@{subject}`", f"error: {exc}")
                return None
            self.truth[key] = _answer(result)
        return self.truth[key]

    def compare(self, what: str, name: str, expected: Answer | None, got: Answer) -> None:
        if expected is None:
            return
        message = f"`{name}`: Check says {_show(expected)}, got {_show(got)}"
        self.report.expect(expected == got, what, message)


def _named(snap: Snapshot, loaded: ValidationFile) -> tuple[list[ObjectRef], list[SubjectRef]]:
    schema = snap.schema
    objects: set[ObjectRef] = set()
    subjects: set[SubjectRef] = set()
    wildcard_types: set[str] = set()
    named = [r.subject for r in loaded.relationships] + [a.item.subject for a in loaded.assertions]
    objects |= {r.resource for r in loaded.relationships}
    objects |= {a.item.resource for a in loaded.assertions}
    for subject in named:
        if subject.id == WILDCARD:
            wildcard_types.add(subject.type)
            continue
        subjects.add(subject)
        objects.add(subject.object)
    subjects |= {SubjectRef(t, FRESH_SUBJECT_ID) for t in wildcard_types}
    resources = sorted((o for o in objects if o.type in schema.definitions), key=str)
    valid = [
        s
        for s in subjects
        if s.type in schema.definitions
        and (not s.relation or schema.member(s.type, s.relation) is not None)
    ]
    return resources, sorted(valid, key=str)


async def check_agreement(
    engine: Engine, snap: Snapshot, loaded: ValidationFile, report: FileReport
) -> None:
    resources, subjects = _named(snap, loaded)
    world = _World(engine, snap, report, resources, subjects)
    for resource in resources:
        for name in world.members(resource.type):
            for subject in subjects:
                await world.check(resource, name, subject)
    await _list_permissions(world)
    await _lookup_resources(world)
    await _lookup_subjects(world)


async def _list_permissions(world: _World) -> None:
    for resource in world.resources:
        for subject in world.subjects:
            what = f"ListPermissions `{resource}` for `{subject}`"
            try:
                listed = await world.engine.list_permissions(
                    world.snap, resource, subject, EMPTY_CONTEXT
                )
            except AuthzError as exc:
                world.report.fail(what, f"error: {exc}")
                continue
            for name, result in listed:
                expected = await world.check(resource, name, subject)
                world.compare(what, name, expected, _answer(result))


async def _collect(
    make: Callable[..., AsyncIterator[T]], key: Callable[[T], str]
) -> tuple[list[T], list[T]]:
    """The whole stream, and the same stream read two at a time through the cursor."""
    whole = [x async for x in make()]
    paged: list[T] = []
    cursor: str | None = None
    while True:
        page = [x async for x in make(after=cursor, limit=2)]
        paged.extend(page)
        if len(page) < 2 or len(paged) > len(whole):
            return whole, paged
        cursor = key(page[-1])


async def _lookup_resources(world: _World) -> None:
    engine, snap = world.engine, world.snap
    for type_name in sorted({r.type for r in world.resources}):
        ids = [r.id for r in world.resources if r.type == type_name]
        for name in world.members(type_name):
            for subject in world.subjects:
                what = f"LookupResources `{type_name}#{name}` for `{subject}`"

                make = partial(
                    engine.lookup_resources, snap, type_name, name, subject, EMPTY_CONTEXT
                )
                try:
                    whole, paged = await _collect(make, lambda r: r.resource_id)
                except AuthzError as exc:
                    world.report.fail(what, f"error: {exc}")
                    continue
                world.report.expect(whole == paged, what, "paging with a cursor changes the stream")
                found = {r.resource_id: (r.decision, r.missing_context) for r in whole}
                order = [r.resource_id for r in whole]
                world.report.expect(order == sorted(set(order)), what, "ids not sorted and unique")
                for resource_id in sorted(set(ids) | set(found)):
                    obj = ObjectRef(type_name, resource_id)
                    expected = await world.check(obj, name, subject)
                    world.compare(what, str(obj), expected, found.get(resource_id, DENIED))


async def _lookup_subjects(world: _World) -> None:
    engine, snap = world.engine, world.snap
    kinds = sorted({(s.type, s.relation) for s in world.subjects})
    for resource in world.resources:
        for name in world.members(resource.type):
            for subject_type, relation in kinds:
                what = f"LookupSubjects `{resource}#{name}` for `{subject_type}`" + (
                    f"#{relation}" if relation else ""
                )

                make = partial(
                    engine.lookup_subjects,
                    snap,
                    resource,
                    name,
                    subject_type,
                    EMPTY_CONTEXT,
                    subject_relation=relation,
                )
                try:
                    whole, paged = await _collect(make, lambda s: s.subject_id)
                except AuthzError as exc:
                    world.report.fail(what, f"error: {exc}")
                    continue
                world.report.expect(whole == paged, what, "paging with a cursor changes the stream")
                listed = {s.subject_id: (s.decision, s.missing_context) for s in whole}
                wildcard = listed.pop(WILDCARD, None)
                excluded = {
                    e.subject_id: (e.decision, e.missing_context)
                    for s in whole
                    if s.subject_id == WILDCARD
                    for e in s.excluded_subjects
                }
                named = {
                    s.id for s in world.subjects if (s.type, s.relation) == (subject_type, relation)
                }
                for subject_id in sorted(named | set(listed) | set(excluded)):
                    if subject_id in listed:
                        got = listed[subject_id]
                    elif subject_id in excluded:
                        got = excluded[subject_id]
                    elif wildcard is None:
                        got = DENIED
                    else:
                        got = wildcard
                    subject = SubjectRef(subject_type, subject_id, relation)
                    expected = await world.check(resource, name, subject)
                    world.compare(what, str(subject), expected, got)
