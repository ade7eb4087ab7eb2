"""Deep evaluations within the limits answer, whatever Python's stack allows.

Every nested subproblem holds its caller's frames until it returns: about ten for the
dispatch, and one or two more for each operator around the arrow or subject set it came
from. Once 48 levels of a permission whose operators nest 64 deep (both within their
limits) took some 6,000 frames, and AUTHZ_MAX_DEPTH = 200 over plain nested groups some
1,600: RecursionError, INTERNAL at the API, where the answer is ALLOWED or DENIED.
"""

from __future__ import annotations

import asyncio

import pytest

from authz_service.engine import Decision, Dispatcher, Limits, Subproblem, SubResult
from authz_service.model import EMPTY_CONTEXT, ObjectRef, SubjectRef

from .helpers import setup

# `(aaa + parent->ppp)` is one level deep, each `- bbb` one more: 64, the most allowed.
NESTED = f"""
definition user {{}}
definition thing {{
    relation parent: thing
    relation aaa: user
    relation bbb: user
    permission ppp = (aaa + parent->ppp){" - bbb" * 63}
}}
"""

GROUPS = """
definition user {}
definition group {
    relation member: user | group#member
}
"""


def parents(levels: int) -> list[str]:
    """thing:t0 -> thing:t1 -> ... -> thing:t{levels}, where u1 has `aaa`."""
    chain = [f"thing:t{i}#parent@thing:t{i + 1}" for i in range(levels)]
    return [*chain, f"thing:t{levels}#aaa@user:u1"]


async def test_a_deep_chain_of_deeply_nested_permissions_is_decided() -> None:
    s = await setup(NESTED, [*parents(48), "thing:t0#bbb@user:u2", "thing:t48#aaa@user:u2"])
    assert await s.decision("thing:t0#ppp@user:u1") is Decision.ALLOWED
    assert await s.decision("thing:t0#ppp@user:u2") is Decision.DENIED  # excluded at t0
    assert await s.decision("thing:t1#ppp@user:u2") is Decision.ALLOWED
    assert await s.decision("thing:t0#ppp@user:u3") is Decision.DENIED
    explained = await s.check("thing:t0#ppp@user:u1", explain=True)
    assert explained.decision is Decision.ALLOWED
    u1 = SubjectRef("user", "u1")
    listed = await s.engine.list_permissions(s.snap, ObjectRef("thing", "t0"), u1, EMPTY_CONTEXT)
    assert [(name, r.decision) for name, r in listed] == [("ppp", Decision.ALLOWED)]
    found = s.engine.lookup_resources(s.snap, "thing", "ppp", u1, EMPTY_CONTEXT)
    assert len([r async for r in found]) == 49
    subjects = s.engine.lookup_subjects(
        s.snap, ObjectRef("thing", "t0"), "ppp", "user", EMPTY_CONTEXT
    )
    assert [r.subject_id async for r in subjects] == ["u1"]


async def test_a_raised_depth_limit_is_not_cut_short_by_the_stack() -> None:
    levels = 600
    rels = [f"group:g{i}#member@group:g{i + 1}#member" for i in range(levels)]
    s = await setup(GROUPS, [*rels, f"group:g{levels}#member@user:deep"])
    deep = Limits(max_depth=1_000)
    result = await s.check("group:g0#member@user:deep", limits=deep)
    assert result.decision is Decision.ALLOWED
    result = await s.check("group:g0#member@user:nobody", limits=deep)
    assert result.decision is Decision.DENIED


async def test_cancelling_a_deep_evaluation_cancels_the_task_it_continues_in() -> None:
    levels = 300
    reached, cancelled = asyncio.Event(), asyncio.Event()

    class Stall:
        """Holds the evaluation at depth 250, well past the first new task."""

        def __init__(self, inner: Dispatcher) -> None:
            self.inner = inner

        async def dispatch(self, req: Subproblem) -> SubResult:
            if req.depth == 250:
                reached.set()
                try:
                    await asyncio.Future()
                except asyncio.CancelledError:
                    cancelled.set()
                    raise
            return await self.inner.dispatch(req)

    rels = [f"group:g{i}#member@group:g{i + 1}#member" for i in range(levels)]
    s = await setup(GROUPS, [*rels, f"group:g{levels}#member@user:deep"], wrapper=Stall)
    check = asyncio.ensure_future(
        s.check("group:g0#member@user:deep", limits=Limits(max_depth=1_000))
    )
    reaching = asyncio.ensure_future(reached.wait())
    await asyncio.wait({check, reaching}, return_when=asyncio.FIRST_COMPLETED)
    reaching.cancel()
    assert not check.done(), check.exception()  # RecursionError before the fix
    check.cancel()
    with pytest.raises(asyncio.CancelledError):
        await check
    assert cancelled.is_set()
