"""Per-request state, and the first link of every dispatch: memo, cycles, limits.

Cycles in data (a group that contains itself, folders that are each other's parent) are
solved, not followed forever. The meaning of a cycle is the least fixpoint: nothing holds
unless some finite chain of relationships proves it. Every operator that may sit on a
cycle is monotone (union, intersection, arrows), so it can be computed by iteration from
"false", locally, the way Tarjan's algorithm finds strongly connected components:

- each evaluation gets an increasing index; a subproblem met again while still on the
  current path is a cycle: it answers with its current approximation (false at first)
  and the answer records that it relied on that open evaluation (`cycle_index`);
- a finished evaluation that relied on an open one is a member of an unfinished cycle:
  it is kept (for reuse within this pass) but not memoized;
- when the evaluation that closes the cycle finishes (it relied on nothing older than
  itself), if every value handed out during the pass equals what its node finally got,
  the approximations are a fixpoint, reached from below: all members are exact and are
  memoized. Otherwise the approximations are updated and the pass runs again.

Each pass evaluates every member once, so even densely connected groups stay cheap.
Exclusion inside a cycle has no least fixpoint in general (and no meaning in SpiceDB);
such a schema still terminates here, within the pass limit.

A nested subproblem is awaited inside its caller and holds the caller's frames until it
returns: about ten for the dispatch, and up to two more for each operator the schema nests
(at most 64). Python allows 1,000 frames, which 48 levels of a permission nested 64 deep
passed six times over (RecursionError). So when the subproblems on the path already hold
about `_TASK_FRAMES` frames in the current task, the next one runs in a new task, awaited
at once: it starts from the event loop's short stack. Evaluation stays sequential, and
cancelling the request cancels that task too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace

from authz_service.deadline import current as current_deadline
from authz_service.engine.caveat_eval import CaveatEvaluator
from authz_service.engine.dispatch import (
    Dispatcher,
    GrantSource,
    Subproblem,
    SubproblemKey,
    SubResult,
)
from authz_service.engine.reads import Reads
from authz_service.engine.tristate import FALSE, Tri
from authz_service.engine.types import ExplainNode, Limits, Snapshot
from authz_service.errors import DeadlineExceeded, LimitExceeded

__all__ = ["RequestState"]

_YIELD_EVERY = 128  # dispatches between yields to the event loop
_YIELD_WORK = 1_024  # relationships and ids a lookup's walk handles between yields
_MAX_PASSES = 64  # passes over one cycle; monotone cycles settle in a handful
_LEVEL_FRAMES = 16  # frames a nested subproblem holds besides its operators (9 measured)
_TASK_FRAMES = 400  # frames one task's path may hold, of Python's 1,000


class RequestState:
    """Everything one request shares across its subproblems (one Check, one CheckBulk,
    one ListPermissions, one lookup). Not shared between requests, not thread-safe."""

    def __init__(
        self,
        *,
        snapshot: Snapshot,
        reads: Reads,
        inner: Dispatcher,
        limits: Limits,
        explain: bool = False,
        grant_sources: Sequence[GrantSource] = (),
    ) -> None:
        self.snapshot = snapshot
        self.reads = reads
        self.caveats = CaveatEvaluator(snapshot.schema, limits.max_caveat_cost)
        self.inner = inner
        self.limits = limits
        self.explain = explain
        self.grant_sources = tuple(grant_sources)
        self.volatile = reads.has_contextual
        self.root_label = ""
        self.memo: dict[SubproblemKey, SubResult] = {}
        self._path: dict[SubproblemKey, int] = {}  # on the current path -> its index
        self._open: dict[SubproblemKey, SubResult] = {}  # finished members of open cycles
        self._stack: list[SubproblemKey] = []  # the same, in finishing order
        self._approx: dict[SubproblemKey, Tri] = {}  # values handed out for open cycles
        self._handed: dict[SubproblemKey, Tri] = {}  # ... during the current pass
        self._index = 0
        self._steps = 0
        self._work = 0  # walk work since the walk last yielded
        frames = _LEVEL_FRAMES + 2 * snapshot.schema.nesting
        self._levels_per_task = max(1, _TASK_FRAMES // frames)
        self._task_base = 0  # len(_path) when the current task's evaluation began
        self._decision_start = 0  # `_steps` when the current decision began

    async def dispatch(self, req: Subproblem) -> SubResult:
        key = req.key
        found = self.memo.get(key) or self._open.get(key)
        if found is not None:
            return found
        on_path = self._path.get(key)
        if on_path is not None:
            return self._cycle(req, on_path)
        self._guard(req)
        self._steps += 1
        if self._steps - self._decision_start > self.limits.max_subproblems:
            raise self._over_budget()
        if self._steps % _YIELD_EVERY == 0:
            # The memory store never waits: without this a long evaluation would hold the
            # event loop (and ignore cancellation) throughout.
            await asyncio.sleep(0)
        index = self._index = self._index + 1
        for _ in range(_MAX_PASSES):
            mark = len(self._stack)
            self._path[key] = index
            try:
                if len(self._path) - self._task_base > self._levels_per_task:
                    result = await self._in_new_task(req)
                else:
                    result = await self.inner.dispatch(req)
            except BaseException:
                self._forget(mark, key)
                raise
            finally:
                del self._path[key]
            if self.volatile and not result.volatile:
                result = replace(result, volatile=True)
            if result.cycle_index is None:
                self.memo[key] = result
                return result
            if result.cycle_index < index:  # a member of a cycle closed further up
                self._stack.append(key)
                self._open[key] = result
                return result
            if self._settled(mark, key, result.value):
                result = replace(result, cycle_index=None)
                self._close(mark, key, result)
                return result
            self._next_pass(mark, key, result.value)
        raise LimitExceeded(f"cycle did not settle checking `{self.root_label}`")

    async def _in_new_task(self, req: Subproblem) -> SubResult:
        held, self._task_base = self._task_base, len(self._path) - 1
        try:
            return await asyncio.ensure_future(self.inner.dispatch(req))
        finally:
            self._task_base = held

    def _over_budget(self) -> LimitExceeded:
        return LimitExceeded(
            f"more than {self.limits.max_subproblems} subproblems checking "
            f"`{self.root_label}`, over the limit AUTHZ_MAX_SUBPROBLEMS "
            f"= {self.limits.max_subproblems}"
        )

    async def walked(self, steps: int, work: int) -> None:
        """A lookup's candidate walk, which runs outside any dispatch, did `steps`
        subproblems' worth of expansion (each an object or subject set whose
        relationships it read, as a dispatch reads a node's) and handled `work`
        relationships and ids. The steps count against the budget of the decision at hand
        (the walk is one, `begin_decision`); the deadline is checked; and once per
        `_YIELD_WORK` of work the walk yields to the event loop: over the in-memory index
        nothing else would, and a walk over 200,000 documents held the loop for 0.9 s."""
        self._steps += steps
        if self._steps - self._decision_start > self.limits.max_subproblems:
            raise self._over_budget()
        self.check_deadline()
        # A step (a read) weighs as a dispatch does: a yield every _YIELD_EVERY of them.
        self._work += work + steps * (_YIELD_WORK // _YIELD_EVERY)
        if self._work >= _YIELD_WORK:
            self._work = 0
            await asyncio.sleep(0)

    def begin_decision(self) -> None:
        """Start the subproblem budget of one decision (a Check, one CheckBulk item, one
        permission of ListPermissions, one lookup candidate, a lookup's candidate walk):
        a batch or a stream is bounded per answer, and by its deadline as a whole."""
        self._decision_start = self._steps

    def _guard(self, req: Subproblem) -> None:
        limits = self.limits
        if req.depth >= limits.max_depth:
            raise LimitExceeded(
                f"max depth `{limits.max_depth}` exceeded checking `{self.root_label}`, "
                f"the limit AUTHZ_MAX_DEPTH = {limits.max_depth}"
            )
        self.check_deadline()

    def check_deadline(self) -> None:
        """Raise DeadlineExceeded once the request's deadline has passed (lookups call
        this while walking relationships outside any dispatch)."""
        deadline = self.limits.deadline
        call = current_deadline()
        if call is not None and (deadline is None or call < deadline):
            deadline = call
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlineExceeded(f"deadline exceeded checking `{self.root_label}`")

    def _cycle(self, req: Subproblem, index: int) -> SubResult:
        value = self._approx.get(req.key, FALSE)
        self._handed[req.key] = value
        node = None
        if self.explain:
            node = ExplainNode(
                kind="cycle",
                object=str(req.resource),
                relation=req.relation,
                result=value.decision,
                reason=f"`{req.label()}` is already being evaluated (cycle)",
            )
        return SubResult(value, cycle_index=index, explanation=node)

    def _members(self, mark: int, key: SubproblemKey) -> list[SubproblemKey]:
        return [*self._stack[mark:], key]

    def _settled(self, mark: int, key: SubproblemKey, value: Tri) -> bool:
        for member in self._members(mark, key):
            handed = self._handed.get(member)
            final = value if member == key else self._open[member].value
            if handed is not None and handed != final:
                return False
        return True

    def _close(self, mark: int, key: SubproblemKey, result: SubResult) -> None:
        for member in self._stack[mark:]:
            self.memo[member] = replace(self._open.pop(member), cycle_index=None)
        self.memo[key] = result
        for member in self._members(mark, key):
            self._approx.pop(member, None)
            self._handed.pop(member, None)
        del self._stack[mark:]

    def _next_pass(self, mark: int, key: SubproblemKey, value: Tri) -> None:
        for member in self._stack[mark:]:
            self._approx[member] = self._open.pop(member).value
        self._approx[key] = value
        for member in self._members(mark, key):
            self._handed.pop(member, None)
        del self._stack[mark:]

    def _forget(self, mark: int, key: SubproblemKey) -> None:
        for member in self._members(mark, key):
            self._open.pop(member, None)
            self._approx.pop(member, None)
            self._handed.pop(member, None)
        del self._stack[mark:]

    def check_fanout(self, req: Subproblem, count: int, what: str) -> None:
        if count > self.limits.max_fanout:
            raise self.fanout_error(f"{req.resource}#{what}", count)

    def fanout_error(self, where: str, count: int) -> LimitExceeded:
        """`count` relationships at `where` lead on from one step, over AUTHZ_MAX_FANOUT
        (also raised by the lookups' walks for their own steps)."""
        return LimitExceeded(
            f"fan-out of `{count}` relationships at `{where}` exceeds the "
            f"limit AUTHZ_MAX_FANOUT = {self.limits.max_fanout} checking `{self.root_label}`"
        )
