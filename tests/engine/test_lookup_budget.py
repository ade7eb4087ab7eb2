"""The candidate walk of LookupResources is bounded as a decision is: it yields to the
event loop as it goes, counts against the subproblem budget, refuses a step over the
fan-out limit when it reaches it, and stops at the deadline. Before, it ran to the end
in one piece whatever its size (a walk over 200,000 documents held every tenant of the
worker for 0.9 s)."""

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
