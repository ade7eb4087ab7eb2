"""Decision-cache values (cache/results.py): the same answers back, and nothing the cycle
collector has to walk."""

from __future__ import annotations

import gc
from datetime import UTC, datetime

import pytest

from authz_service.cache.results import loaded, stored
from authz_service.engine import CheckResult, Decision, ExplainNode
from authz_service.store.memory import MemoryStore
from tests.cache.test_refresh_ahead import resolver_at
from tests.cache.test_revision_window import LATEST, Clock, T, Tracker, service, update
from tests.tenancy.helpers import CALL, item

EXPIRY = datetime(2031, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "result",
    [
        CheckResult(Decision.ALLOWED),
        CheckResult(Decision.DENIED),
        CheckResult(Decision.ALLOWED, valid_until=EXPIRY),
        CheckResult(Decision.CONDITIONAL, ("ip", "time")),
        CheckResult(Decision.CONDITIONAL, ("ip",), valid_until=EXPIRY),
    ],
)
def test_an_answer_comes_back_as_it_went_in(result: CheckResult) -> None:
    assert loaded(stored(result)) == result


def test_an_answer_that_is_never_shared_is_refused() -> None:
    with pytest.raises(ValueError, match="only cacheable"):
        stored(CheckResult(Decision.ALLOWED, cacheable=False))


def test_an_answer_with_an_explanation_is_kept_whole() -> None:
    """The lifecycle gate explains a suspended subject's denial unasked."""
    why = ExplainNode("lifecycle", "user:a", "", Decision.DENIED, reason="suspended")
    result = CheckResult(Decision.DENIED, explanation=why)
    assert loaded(stored(result)) is result


async def test_decision_cache_entries_are_invisible_to_the_cycle_collector() -> None:
    store, clock = MemoryStore(), Clock()
    tracker = Tracker(clock)
    permissions = await service(store, resolver_at(store, clock, tracker))
    tracker.heads[T] = await store.write(T, [update("document:d#viewer@user:a")])
    for user in "abc":
        await permissions.check(T, item(f"document:d#view@user:{user}"), LATEST, CALL)
    entries = list(permissions._cache._entries.items())
    assert len(entries) == 3
    # fails on 1d91715: the values were CheckResult objects, tracked, and so the
    # entries' tuples holding them. A tuple is untracked in a collection once its items
    # are, so the entry's tuple goes a collection after the value inside it.
    gc.collect()
    gc.collect()
    assert [(k, v) for k, v in entries if gc.is_tracked(k) or gc.is_tracked(v)] == []
    again = await permissions.check(T, item("document:d#view@user:a"), LATEST, CALL)
    assert again.cache_hit
    assert again.result == CheckResult(Decision.ALLOWED)
