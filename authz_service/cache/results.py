"""Decision-cache values in a form the cycle collector does not track.

A `CheckResult` is an object Python's cycle collector tracks, and so is the tuple of
the LRU's entry holding it: a decision cache of 100,000 of them made every full
collection walk 200,000 objects, on the event loop (docs/performance.md, "Uncached p99
and the cycle collector"). Stored as a tuple of a string, a tuple of strings and a
datetime instead, an entry is untracked once it survives a collection; the common
answers come back as shared instances. An answer that carries an explanation without
being asked for one (the service's lifecycle gate explains a suspended subject's
denial) is kept as it is: rare, and nothing of it may be lost.
"""

from __future__ import annotations

from datetime import datetime

from authz_service.engine import CheckResult, Decision

__all__ = ["StoredResult", "loaded", "stored"]

# (decision, missing context parameters, valid_until), or the answer itself when it
# carries an explanation
StoredResult = tuple[str, tuple[str, ...], datetime | None] | CheckResult

_SHARED: dict[StoredResult, CheckResult] = {
    (d.value, (), None): CheckResult(d) for d in (Decision.ALLOWED, Decision.DENIED)
}


def stored(result: CheckResult) -> StoredResult:
    """`result` as a cache value (only cacheable answers are cached)."""
    if not result.cacheable:
        raise ValueError("only cacheable answers are cached")
    if result.explanation is not None:
        return result
    return (result.decision.value, result.missing_context, result.valid_until)


def loaded(value: StoredResult) -> CheckResult:
    if isinstance(value, CheckResult):
        return value
    shared = _SHARED.get(value)
    if shared is not None:
        return shared
    decision, missing, valid_until = value
    return CheckResult(Decision(decision), missing, valid_until=valid_until)
