"""The candidate walks of LookupResources and LookupSubjects are bounded as a decision is:
they yield to the event loop as they go, count against the subproblem budget, refuse a
step over the fan-out limit when they reach it, and stop at the deadline. Before, both
walks ran to the end in one piece whatever their size (a walk over 200,000 documents
held every tenant of the worker for 0.9 s; one over 100,000 groups for 3.4 s, and only
then failed on the fan-out limit, in the Check of its first candidate)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest

from authz_service.engine import Engine, Limits, Snapshot
from authz_service.engine import request as request_module
from authz_service.errors import DeadlineExceeded, LimitExceeded
from authz_service.model import (
    EMPTY_CONTEXT,
    ObjectRef,
    RelationshipFilter,
    RelationshipUpdate,
    SubjectRef,
    UpdateOp,
    parse_relationship,
)
from authz_service.schema import compile_schema
from authz_service.store.memory import MemoryStore

from .helpers import NOW, TENANT, Setup

SCHEMA = """
definition user {}
definition group {
    relation member: user | group#member
}
definition doc {
    relation viewer: user | group#member
    permission view = viewer
}
"""
ANN = SubjectRef("user", "ann")
DOC_Z = ObjectRef("doc", "z")


async def setup(
    rels: list[str],
    *,
    limits: Limits = Limits(),  # noqa: B008 - frozen
    store: MemoryStore | None = None,
) -> Setup:
    store = store or MemoryStore()
    updates = [RelationshipUpdate(UpdateOp.TOUCH, parse_relationship(r)) for r in rels]
    revision = await store.write(TENANT, updates)
    snap = Snapshot(TENANT, revision, compile_schema(SCHEMA), NOW)
    return Setup(Engine(store, limits=limits), snap, store)


class Ticker:
    """Counts the turns of the event loop it gets while it runs."""

    def __init__(self) -> None:
        self.turns = 0
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            self.turns += 1
            await asyncio.sleep(0)

    async def during(self, work: Awaitable[Any]) -> tuple[Any, int]:
        """`work`'s result, and the turns this got while it ran."""
        start = self.turns
        try:
            return await work, self.turns - start
        finally:
            self._task.cancel()


async def _all(stream: AsyncIterator[Any]) -> list[Any]:
    return [found async for found in stream]


def _resources(s: Setup, limit: int | None = None) -> Awaitable[list[Any]]:
    stream = s.engine.lookup_resources(s.snap, "doc", "view", ANN, EMPTY_CONTEXT, limit=limit)
    return _all(stream)


def _subjects(s: Setup, limit: int | None = None) -> Awaitable[list[Any]]:
    stream = s.engine.lookup_subjects(s.snap, DOC_Z, "view", "user", EMPTY_CONTEXT, limit=limit)
    return _all(stream)


# --- LookupResources ------------------------------------------------------------------------


async def test_a_long_resource_walk_lets_other_tasks_run() -> None:
    # ann reaches 3,000 documents through one group: no Check is needed (each is proven
    # by the walk), so only the walk can give the loop a turn.
    rels = [f"doc:d{i}#viewer@group:g#member" for i in range(3_000)]
    s = await setup([*rels, "group:g#member@user:ann"])
    found, turns = await Ticker().during(_resources(s, limit=1))
    assert [r.resource_id for r in found] == ["d0"]
    assert turns > 0  # fails before: 0, the walk never yielded


async def test_the_resource_walk_counts_the_candidates_it_follows_against_the_budget() -> None:
    # ann is in 60 groups, each viewing one document: following them costs 60 steps.
    rels = [f"group:g{i}#member@user:ann" for i in range(60)]
    rels += [f"doc:d{i}#viewer@group:g{i}#member" for i in range(60)]
    s = await setup(rels, limits=Limits(max_subproblems=50))
    with pytest.raises(LimitExceeded, match="AUTHZ_MAX_SUBPROBLEMS = 50"):
        await _resources(s, limit=1)  # before: d0, the walk was never counted
    s = await setup(rels, limits=Limits(max_subproblems=200))
    assert len(await _resources(s)) == 60


async def test_the_resource_walk_refuses_a_candidate_named_by_more_than_the_fanout() -> None:
    rels = [f"doc:d{i}#viewer@group:g#member" for i in range(30)]
    s = await setup([*rels, "group:g#member@user:ann"], limits=Limits(max_fanout=20))
    with pytest.raises(
        LimitExceeded, match=r"`30` relationships at `doc:\*#viewer@group:g#member`"
    ):
        await _resources(s, limit=1)  # before: d0
    # The subject's own relationships are not a fan-out (Check reads them for the one
    # resource at hand): 30 direct documents are listed.
    direct = [f"doc:d{i}#viewer@user:ann" for i in range(30)]
    s = await setup(direct, limits=Limits(max_fanout=20))
    assert len(await _resources(s)) == 30
    # Nor are those of a subject set asked about: they are its direct relationships.
    s = await setup(rels, limits=Limits(max_fanout=20))
    stream = s.engine.lookup_resources(
        s.snap, "doc", "view", SubjectRef("group", "g", "member"), EMPTY_CONTEXT
    )
    assert len(await _all(stream)) == 30


class _Clock:
    """The deadline's clock in `engine/request.py`, moved on by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


class _LateStore(MemoryStore):
    """Moves `clock` past every deadline at the first read of `late`, and counts the
    reads after it."""

    def __init__(self, clock: _Clock, late: RelationshipFilter) -> None:
        super().__init__()
        self.clock = clock
        self.late = late
        self.after = -1  # reads since the deadline passed; -1: not passed yet

    async def read(self, tenant: str, revision: int, flt: RelationshipFilter, **kw: Any) -> Any:
        if self.after >= 0:
            self.after += 1
        elif flt == self.late:
            self.clock.now = 10.0
            self.after = 0
        return await super().read(tenant, revision, flt, **kw)


async def test_the_resource_walk_reads_nothing_once_its_deadline_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock()
    monkeypatch.setattr(request_module, "time", clock)
    # group:g#member leads on to two reads: the groups naming it, then the documents.
    late = RelationshipFilter("group", None, "member", "group", ("g",), "member")
    store = _LateStore(clock, late)
    rels = ["group:g#member@user:ann", "doc:d1#viewer@group:g#member"]
    s = await setup(rels, limits=Limits(deadline=5.0), store=store)
    with pytest.raises(DeadlineExceeded):
        await _resources(s)
    assert store.after == 0  # before: 1, the walk read on until its next step


# --- LookupSubjects -------------------------------------------------------------------------


def _many_groups(groups: int) -> list[str]:
    """doc:z viewed by `groups` groups of one user each, and by ann directly."""
    rels = [f"doc:z#viewer@group:h{i}#member" for i in range(groups)]
    return [
        *rels,
        *(f"group:h{i}#member@user:v{i}" for i in range(groups)),
        "doc:z#viewer@user:ann",
    ]


async def test_a_long_subject_walk_lets_other_tasks_run() -> None:
    # ann sorts first and is a direct viewer: her Check takes two steps, so only the
    # walk over the 300 groups can give the loop a turn.
    s = await setup(_many_groups(300))
    found, turns = await Ticker().during(_subjects(s, limit=1))
    assert [r.subject_id for r in found] == ["ann"]
    assert turns > 0  # fails before: 0


async def test_the_subject_walk_refuses_a_fanout_before_expanding_it() -> None:
    class Counting(MemoryStore):
        groups_read = 0

        async def read(self, tenant: str, revision: int, flt: RelationshipFilter, **kw: Any) -> Any:
            self.groups_read += flt.resource_type == "group"
            return await super().read(tenant, revision, flt, **kw)

    store = Counting()
    s = await setup(_many_groups(30), limits=Limits(max_fanout=20), store=store)
    with pytest.raises(LimitExceeded, match=r"`30` relationships at `doc:z#viewer`.*= 20"):
        await _subjects(s)
    assert store.groups_read == 0  # before: 30, every group read, then Check refused


async def test_the_subject_walk_counts_against_the_budget() -> None:
    s = await setup(_many_groups(60), limits=Limits(max_subproblems=50))
    with pytest.raises(LimitExceeded, match="AUTHZ_MAX_SUBPROBLEMS = 50"):
        await _subjects(s, limit=1)  # before: ann, the walk over 60 groups was free
    s = await setup(_many_groups(60), limits=Limits(max_subproblems=200))
    assert [r.subject_id for r in await _subjects(s, limit=1)] == ["ann"]
