"""Consistency tokens, snapshots, the cache and tenant isolation, over gRPC on PostgreSQL."""

from __future__ import annotations

import base64
import hashlib

import grpc
import pytest

from authz_service.app import App
from tests.api.helpers import ALLOWED, DENIED, Api, bad_request_fields


@pytest.fixture
async def api(channel: grpc.aio.Channel) -> Api:
    client = Api(channel)
    await client.write_schema()
    return client


async def test_a_write_token_is_seen_by_the_next_check(api: Api) -> None:
    token = await api.touch("acme", "document:plan#viewer@user:alice")
    reply = await api.check("acme", "document:plan", "view", "user:alice", fresh=token)
    assert reply.decision == ALLOWED
    revoked = await api.delete("acme", "document:plan#viewer@user:alice")
    reply = await api.check("acme", "document:plan", "view", "user:alice", fresh=revoked)
    assert reply.decision == DENIED


async def test_exact_snapshot_gives_the_old_answer_after_a_delete(api: Api) -> None:
    granted = await api.touch("acme", "document:plan#viewer@user:alice")
    await api.delete("acme", "document:plan#viewer@user:alice")
    old = await api.check("acme", "document:plan", "view", "user:alice", exact=granted)
    now = await api.check("acme", "document:plan", "view", "user:alice", full=True)
    assert (old.decision, now.decision) == (ALLOWED, DENIED)


async def test_a_cache_hit_does_no_database_round_trip(app: App, api: Api) -> None:
    token = await api.touch(
        "acme", "document:plan#viewer@group:eng#member", "group:eng#member@user:alice"
    )
    first = await api.check("acme", "document:plan", "view", "user:alice", fresh=token)
    if app.index is not None:
        # The first read of a tenant starts the relationship index's load in the background;
        # its reads are not the cache hit's, so let it finish before counting.
        assert await app.index.wait_loaded("acme")
    calls: list[str] = []
    store = app.store
    for name in ("read", "head_revision", "check_revision", "changes"):
        original = getattr(store, name)

        def counting(
            *args: object, _name: str = name, _original: object = original, **kw: object
        ) -> object:
            calls.append(_name)
            return _original(*args, **kw)  # type: ignore[operator]

        setattr(store, name, counting)
    hits_before = app.cache.stats().hits
    second = await api.check("acme", "document:plan", "view", "user:alice", fresh=token)
    assert (first.decision, second.decision) == (ALLOWED, ALLOWED)
    assert app.cache.stats().hits == hits_before + 1
    assert calls == []


async def test_fully_consistent_bypasses_the_cache(app: App, api: Api) -> None:
    token = await api.touch("acme", "document:plan#viewer@user:alice")
    await api.check("acme", "document:plan", "view", "user:alice", fresh=token)
    hits = app.cache.stats().hits
    reply = await api.check("acme", "document:plan", "view", "user:alice", full=True)
    assert reply.decision == ALLOWED
    assert app.cache.stats().hits == hits


async def test_a_tenant_never_sees_another_tenants_data(api: Api) -> None:
    token_a = await api.touch("acme", "document:plan#viewer@user:alice")
    token_b = await api.touch("globex", "document:other#viewer@user:bob")
    assert (
        await api.check("acme", "document:plan", "view", "user:alice", fresh=token_a)
    ).decision == ALLOWED
    assert (
        await api.check("globex", "document:plan", "view", "user:alice", full=True)
    ).decision == DENIED
    assert (
        await api.check("acme", "document:other", "view", "user:bob", full=True)
    ).decision == DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.check("acme", "document:plan", "view", "user:alice", fresh=token_b)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "another tenant" in (err.value.details() or "")


async def test_a_token_from_the_future_is_refused(api: Api) -> None:
    from authz_service.api.tokens import encode_token

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.check(
            "acme", "document:plan", "view", "user:alice", fresh=encode_token("acme", 10_000)
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize("revision", [2**31, 2**63 - 1, 2**63, 2**64])
@pytest.mark.parametrize("mode", ["fresh", "exact"])
async def test_a_token_past_what_a_revision_column_holds_is_past_the_head(
    api: Api, mode: str, revision: int
) -> None:
    """Revisions are bigint; a token beyond even 32 bits once reached the database as
    an int4 parameter and came back as a generic INVALID_ARGUMENT."""
    from authz_service.api.tokens import encode_token

    await api.touch("acme", "document:plan#viewer@user:alice")
    token = encode_token("acme", revision)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.check("acme", "document:plan", "view", "user:alice", **{mode: token})
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, err.value.details()
    assert f"`{revision}`" in (err.value.details() or "")


def _encoded(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


_TAG = hashlib.sha256(b"acme").hexdigest()[:12]
_CANONICAL = _encoded(f"1.{_TAG}.1")  # what the server issues for revision 1 of acme
_NOT_CANONICAL = {
    "underscore": _encoded(f"1.{_TAG}.0_1"),
    "arabic-indic-digit": _encoded(f"1.{_TAG}.\u0661"),
    "plus-sign": _encoded(f"1.{_TAG}.+1"),
    "leading-space": _encoded(f"1.{_TAG}. 1"),
    "trailing-newline": _encoded(f"1.{_TAG}.1\n"),
    "leading-zero": _encoded(f"1.{_TAG}.01"),
    "schema-seq-sign": _encoded(f"2.{_TAG}.1.+1"),
    "padded": _CANONICAL + "==",
    # Four characters each: base64 decoding skipped them, when the length still fit.
    "spaces-before": "    " + _CANONICAL,
    "newlines-after": _CANONICAL + "\r\n\r\n",
    "characters-inside": _CANONICAL[:4] + "!!!!" + _CANONICAL[4:],
    "unused-bits-set": _CANONICAL[:-1] + chr(ord(_CANONICAL[-1]) + 1),
}


async def test_the_canonical_token_is_accepted(api: Api) -> None:
    await api.touch("acme", "document:plan#viewer@user:alice")
    reply = await api.check("acme", "document:plan", "view", "user:alice", fresh=_CANONICAL)
    assert reply.decision == ALLOWED


@pytest.mark.parametrize("token", _NOT_CANONICAL.values(), ids=_NOT_CANONICAL.keys())
@pytest.mark.parametrize("mode", ["fresh", "exact"])
async def test_only_the_canonical_form_of_a_token_is_accepted(
    api: Api, mode: str, token: str
) -> None:
    """Each of these once decoded to revision 1 (or the token above): a token is opaque,
    and a lenient parser would make accidents, such as a token cut and pasted with a
    newline, look like tokens."""
    await api.touch("acme", "document:plan#viewer@user:alice")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.check("acme", "document:plan", "view", "user:alice", **{mode: token})
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert "is not a consistency token" in (err.value.details() or "")
    field = "at_least_as_fresh" if mode == "fresh" else "at_exact_snapshot"
    assert bad_request_fields(err.value) == [f"consistency.{field}"]
