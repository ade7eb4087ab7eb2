"""CheckBulk above the server's per-call limit: split, in order, one revision, item errors kept."""

from __future__ import annotations

import pytest
from authz_client import (
    AsyncAuthzClient,
    AuthzClient,
    Consistency,
    Decision,
    InvalidArgumentError,
)
from client_support import Recorder

ALLOWED = ("document:readme", "view", "user:alice")
DENIED = ("document:roadmap", "view", "user:bob")
BAD = ("document:readme", "no_such_permission", "user:alice")


def _items(count: int) -> list[tuple[str, str, str]]:
    """ALLOWED and DENIED alternating, with a bad item at every 700th position."""
    return [BAD if i % 700 == 699 else (ALLOWED if i % 2 == 0 else DENIED) for i in range(count)]


def _expected(items: list[tuple[str, str, str]]) -> list[Decision]:
    decisions = {ALLOWED: Decision.ALLOWED, DENIED: Decision.DENIED, BAD: Decision.UNSPECIFIED}
    return [decisions[item] for item in items]


async def test_a_batch_over_the_limit_is_split(server: str, recorder: Recorder) -> None:
    items = _items(2345)
    async with AsyncAuthzClient(server, tenant="demo", interceptors=[recorder]) as client:
        results = await client.check_bulk(items)

    assert [r.decision for r in results] == _expected(items)
    errors = [i for i, r in enumerate(results) if r.error is not None]
    assert errors == [699, 1399, 2099]
    assert all(isinstance(results[i].error, InvalidArgumentError) for i in errors)
    assert not any(results[i].allowed for i in errors)

    calls = [r for m, r in recorder.requests if m.endswith("/CheckBulk")]
    assert [len(c.items) for c in calls] == [1000, 1000, 345]
    # The later slices are decided at the first slice's revision: one token for all.
    first_token = results[0].token
    assert {r.token for r in results} == {first_token}
    assert not calls[0].HasField("consistency")
    for later in calls[1:]:
        assert later.consistency.at_exact_snapshot.token == first_token


async def test_the_server_limit_is_real(server: str) -> None:
    # What the split avoids: one call with more items than the server takes.
    async with AsyncAuthzClient(server, tenant="demo", max_batch=5000) as client:
        with pytest.raises(InvalidArgumentError) as caught:
            await client.check_bulk(_items(1001))
    assert [v.field for v in caught.value.field_violations] == ["items"]


def test_the_sync_client_splits_too(server: str) -> None:
    items = _items(7)
    with AuthzClient(server, tenant="demo", max_batch=3) as client:
        results = client.check_bulk(items)
    assert [r.decision for r in results] == _expected(items)
    assert len({r.token for r in results}) == 1


async def test_an_explicit_snapshot_applies_to_every_slice(server: str, recorder: Recorder) -> None:
    async with AsyncAuthzClient(
        server, tenant="demo", max_batch=2, interceptors=[recorder]
    ) as client:
        token = (await client.check(*ALLOWED)).token
        results = await client.check_bulk(
            _items(5), consistency=Consistency.at_exact_snapshot(token)
        )
    assert {r.token for r in results} == {token}
    calls = [r for m, r in recorder.requests if m.endswith("/CheckBulk")]
    assert [c.consistency.at_exact_snapshot.token for c in calls] == [token] * 3


@pytest.mark.parametrize("max_batch", [0, -1])
def test_max_batch_must_be_positive(max_batch: int) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        AuthzClient("127.0.0.1:1", max_batch=max_batch)


async def test_an_empty_batch_is_one_call_the_server_refuses(
    server: str, recorder: Recorder
) -> None:
    async with AsyncAuthzClient(server, tenant="demo", interceptors=[recorder]) as client:
        with pytest.raises(InvalidArgumentError) as refused:
            await client.check_bulk([])
    assert [v.field for v in refused.value.field_violations] == ["items"]
    assert [m for m, _ in recorder.requests] == ["/authz.v1.PermissionsService/CheckBulk"]
