"""From a request's state and one question to a `CheckResult`."""

from __future__ import annotations

from authz_service.engine.dispatch import Subproblem, SubResult
from authz_service.engine.request import RequestState
from authz_service.engine.types import CheckItem, CheckResult

__all__ = ["decide", "to_check_result"]


def to_check_result(result: SubResult) -> CheckResult:
    return CheckResult(
        decision=result.value.decision,
        missing_context=result.value.missing_names,
        explanation=result.explanation,
        cacheable=result.cacheable,
        valid_until=result.valid_until,
    )


async def decide(state: RequestState, item: CheckItem) -> CheckResult:
    """Answer `item` (already validated) with the request's shared memo."""
    state.root_label = f"{item.resource}#{item.permission}"
    state.begin_decision()
    req = Subproblem(
        state.snapshot,
        item.context,
        item.resource,
        item.permission,
        item.subject,
        0,
        state,
    )
    return to_check_result(await state.dispatch(req))
