"""Per-request state, and the first link of every dispatch: memo, cycles, limits.

Cycles in data (a group that contains itself) are cut, not followed: a subproblem that is
already on the current path contributes false. Because every operator that may sit on a
cycle is monotone (union, intersection, arrows), the answer at the top of the cycle is
still exact: any derivation of "true" (or "unknown") has one that never revisits a node.
Answers below the top depend on where the path entered the cycle, so they are memoized
only once they are known to be exact:

- a result that relied on no cut, or only on cuts of its own node, is exact;
- a true result is exact whatever it relied on (cutting only removes derivations);
- when the node that closes a cycle ends false, every node inside that cycle that ended
  false with cuts only inside it is false too (all-false is a fixpoint there), so those
  are memoized then; any other answer inside the cycle is dropped with the path.

Exclusion inside a cycle has no well-defined meaning (the result would depend on the
order of evaluation) and is not given one here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from authz_service.engine.caveat_eval import CaveatEvaluator
from authz_service.engine.dispatch import Dispatcher, Subproblem, SubproblemKey, SubResult
from authz_service.engine.reads import Reads
from authz_service.engine.tristate import FALSE
from authz_service.engine.types import Decision, ExplainNode, Limits, Snapshot
from authz_service.errors import DeadlineExceeded, LimitExceeded

if TYPE_CHECKING:
    from authz_service.engine.grants import GrantSource

__all__ = ["RequestState"]

_YIELD_EVERY = 128  # dispatches between yields to the event loop (the memory store never waits)


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
        self.caveats = CaveatEvaluator(snapshot.schema)
        self.inner = inner
        self.limits = limits
        self.explain = explain
        self.grant_sources = tuple(grant_sources)
        self.volatile = reads.has_contextual
        self.root_label = ""
        self.memo: dict[SubproblemKey, SubResult] = {}
        self._path: dict[SubproblemKey, int] = {}
        self._pending: list[tuple[SubproblemKey, SubResult]] = []
        self._steps = 0

    async def dispatch(self, req: Subproblem) -> SubResult:
        key = req.key
        found = self.memo.get(key)
        if found is not None:
            return found
        on_path = self._path.get(key)
        if on_path is not None:
            return self._cut(req, on_path)
        self._guard(req)
        self._steps += 1
        if self._steps % _YIELD_EVERY == 0:
            # The memory store never waits: without this a long evaluation would hold the
            # event loop (and ignore cancellation) throughout.
            await asyncio.sleep(0)
        self._path[key] = req.depth
        mark = len(self._pending)
        try:
            result = await self.inner.dispatch(req)
        except BaseException:
            del self._pending[mark:]
            raise
        finally:
            del self._path[key]
        if self.volatile and not result.volatile:
            result = replace(result, volatile=True)
        if result.cut_depth is not None and result.cut_depth >= req.depth:
            result = replace(result, cut_depth=None)  # the cut was this node's own
        if result.cut_depth is None:
            self._close_cycle(mark, result)
            self.memo[key] = result
        else:
            self._pending.append((key, result))
            if result.value.is_true:
                self.memo[key] = replace(result, cut_depth=None)
        return result

    def _guard(self, req: Subproblem) -> None:
        limits = self.limits
        if req.depth >= limits.max_depth:
            raise LimitExceeded(
                f"max depth `{limits.max_depth}` exceeded checking `{self.root_label}`"
            )
        if limits.deadline is not None and time.monotonic() > limits.deadline:
            raise DeadlineExceeded(f"deadline exceeded checking `{self.root_label}`")

    def _cut(self, req: Subproblem, depth: int) -> SubResult:
        node = None
        if self.explain:
            node = ExplainNode(
                kind="cycle",
                object=str(req.resource),
                relation=req.relation,
                result=Decision.DENIED,
                reason=f"`{req.label()}` is already being evaluated (cycle)",
            )
        return SubResult(FALSE, cut_depth=depth, explanation=node)

    def _close_cycle(self, mark: int, result: SubResult) -> None:
        if len(self._pending) == mark:
            return
        inside = self._pending[mark:]
        del self._pending[mark:]
        if result.value.is_false and all(r.value.is_false for _, r in inside):
            for key, r in inside:
                self.memo[key] = replace(r, cut_depth=None)

    def check_fanout(self, req: Subproblem, count: int, what: str) -> None:
        if count > self.limits.max_fanout:
            raise LimitExceeded(
                f"fan-out of `{count}` relationships at `{req.resource}#{what}` exceeds the "
                f"limit `{self.limits.max_fanout}` checking `{self.root_label}`"
            )
