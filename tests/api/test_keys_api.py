"""KeysService over real gRPC: create, use, list, rotate (with its overlap), expire and
revoke keys, streams included; tenant-bound admins; admin records in the decision log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from authz_service.api.auth import Authenticator
from authz_service.api.gen.authz.v1 import (
    core_pb2,
    keys_pb2,
    keys_pb2_grpc,
    relationships_pb2,
    schema_pb2,
    schema_pb2_grpc,
)
from authz_service.app import App
from authz_service.credentials import ApiKey, Scope, new_key
from authz_service.decisionlog import DecisionKind, RecordFilter, iter_entries
from authz_service.service import methods
from authz_service.store.memory_keys import MemoryKeyStore
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import bad_request_fields
from tests.api.test_auth import KeyedApi, bearer

TTL_S = 0.5
WAIT_S = 15.0  # the longest any condition below may take, on a loaded machine


@pytest.fixture
async def app(pg_dsn: str, tmp_path: Path) -> AsyncIterator[App]:
    settings = server_settings(
        pg_dsn, tmp_path, auth=True, auth_cache_ttl_s=TTL_S, log_mode="buffered"
    )
    running = await start_app(settings)
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


@pytest.fixture
async def channel(app: App) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        yield ch


async def _bootstrap(app: App, tenant: str = "*", scopes: frozenset[Scope] | None = None) -> str:
    """A key made the operator's way (direct database access), to call the RPCs with."""
    record, token = new_key(tenant=tenant, scopes=scopes or frozenset(Scope))
    await app.store.keys.create(record)
    return token


class Keys:
    def __init__(self, channel: grpc.aio.Channel, token: str) -> None:
        self._stub = keys_pb2_grpc.KeysServiceStub(channel)
        self._md = bearer(token)

    async def create(
        self, tenant: str, *scopes: str, **fields: object
    ) -> keys_pb2.CreateKeyResponse:
        request = keys_pb2.CreateKeyRequest(tenant=tenant, scopes=list(scopes), **fields)  # type: ignore[arg-type]
        return await self._stub.CreateKey(request, metadata=self._md)

    async def list(self, **fields: object) -> keys_pb2.ListKeysResponse:
        return await self._stub.ListKeys(keys_pb2.ListKeysRequest(**fields), metadata=self._md)  # type: ignore[arg-type]

    async def revoke(
        self, tenant: str, key_id: str, reason: str = ""
    ) -> keys_pb2.RevokeKeyResponse:
        request = keys_pb2.RevokeKeyRequest(tenant=tenant, key_id=key_id, reason=reason)
        return await self._stub.RevokeKey(request, metadata=self._md)

    async def rotate(
        self, tenant: str, key_id: str, overlap_s: float | None = None
    ) -> keys_pb2.RotateKeyResponse:
        request = keys_pb2.RotateKeyRequest(tenant=tenant, key_id=key_id)
        if overlap_s is not None:
            request.overlap.CopyFrom(
                Duration(seconds=int(overlap_s), nanos=int(overlap_s % 1 * 1e9))
            )
        return await self._stub.RotateKey(request, metadata=self._md)


async def _status(channel: grpc.aio.Channel, token: str) -> tuple[grpc.StatusCode, str]:
    """What ReadSchema answers with `token`: NOT_FOUND (no schema yet) means admitted."""
    stub = schema_pb2_grpc.SchemaServiceStub(channel)
    try:
        await stub.ReadSchema(schema_pb2.ReadSchemaRequest(), metadata=bearer(token), timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


ADMITTED = grpc.StatusCode.NOT_FOUND


async def _until_refused(channel: grpc.aio.Channel, token: str) -> str:
    """Poll until `token` is refused; its message (bounded by WAIT_S)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            code, details = await _status(channel, token)
            if code == grpc.StatusCode.UNAUTHENTICATED:
                return details
            assert code == ADMITTED
            await asyncio.sleep(0.05)


async def test_create_use_list_and_revoke(app: App, channel: grpc.aio.Channel) -> None:
    admin = Keys(channel, await _bootstrap(app))
    made = await admin.create("acme", "check", "write", description="billing")
    assert made.secret.startswith(f"azk_{made.key.key_id}_")
    assert (made.key.tenant, list(made.key.scopes), made.key.description) == (
        "acme",
        ["check", "write"],
        "billing",
    )
    assert (await _status(channel, made.secret))[0] == ADMITTED  # usable at once
    for _ in range(4):
        await admin.create("acme", "check")
    # Pages of two, by key id, and never a secret or a digest.
    seen, cursor = [], None
    while True:
        page = await admin.list(tenant="acme", limit=2, **({"cursor": cursor} if cursor else {}))
        assert len(page.keys) <= 2
        assert made.secret.split("_", 2)[2].encode() not in page.SerializeToString()
        seen += [k.key_id for k in page.keys]
        if not page.HasField("next_cursor"):
            break
        cursor = page.next_cursor
    assert len(seen) == 5
    assert seen == sorted(seen)
    stored = await app.store.keys.get(made.key.key_id)
    assert stored is not None
    assert stored.secret_hash not in (await admin.list(tenant="acme")).SerializeToString()
    revoked = await admin.revoke("acme", made.key.key_id, reason="left the team")
    assert revoked.key.HasField("revoke_time")
    code, details = await _status(channel, made.secret)  # this replica: at once
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in details


async def test_rotation_keeps_the_old_secret_until_the_overlap_ends(
    app: App, channel: grpc.aio.Channel
) -> None:
    admin = Keys(channel, await _bootstrap(app))
    made = await admin.create("acme", "check")
    assert (await _status(channel, made.secret))[0] == ADMITTED  # cached with its old secret
    rotated = await admin.rotate("acme", made.key.key_id, overlap_s=1.5)
    assert rotated.key.key_id == made.key.key_id
    assert rotated.secret != made.secret
    assert rotated.key.HasField("previous_secret_expire_time")
    assert (await _status(channel, rotated.secret))[0] == ADMITTED  # the new one at once
    assert (await _status(channel, made.secret))[0] == ADMITTED  # the old one, in the overlap
    assert "rotated" in await _until_refused(channel, made.secret)
    assert (await _status(channel, rotated.secret))[0] == ADMITTED
    # Without an overlap the previous secret ends at once.
    again = await admin.rotate("acme", made.key.key_id, overlap_s=0)
    code, _ = await _status(channel, rotated.secret)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert (await _status(channel, again.secret))[0] == ADMITTED


THIRTY_DAYS_S = 30 * 86_400


@pytest.mark.parametrize(
    "overlap",
    [
        # keys.proto: "At most 30 days." The whole Duration counts, not its seconds alone.
        Duration(seconds=THIRTY_DAYS_S, nanos=1),
        Duration(seconds=THIRTY_DAYS_S, nanos=999_999_999),
        Duration(seconds=THIRTY_DAYS_S + 1),
        Duration(seconds=-1),
        Duration(seconds=1, nanos=-1),  # signs that disagree: no Duration protobuf allows
        Duration(nanos=1_000_000_000),  # past protobuf's range for nanos
    ],
    ids=["30d+1ns", "30d+999999999ns", "30d+1s", "-1s", "-1ns", "1e9ns"],
)
async def test_an_overlap_past_30_days_or_malformed_is_refused_naming_it(
    app: App, channel: grpc.aio.Channel, overlap: Duration
) -> None:
    token = await _bootstrap(app)
    made = await Keys(channel, token).create("acme", "check")
    request = keys_pb2.RotateKeyRequest(tenant="acme", key_id=made.key.key_id, overlap=overlap)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await keys_pb2_grpc.KeysServiceStub(channel).RotateKey(request, metadata=bearer(token))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(err.value) == ["overlap"]
    assert (await _status(channel, made.secret))[0] == ADMITTED  # not rotated


@pytest.mark.parametrize("overlap_s", [THIRTY_DAYS_S, 1.5], ids=["30d", "1.5s"])
async def test_an_overlap_up_to_30_days_is_kept_with_its_fraction(
    app: App, channel: grpc.aio.Channel, overlap_s: float
) -> None:
    admin = Keys(channel, await _bootstrap(app))
    made = await admin.create("acme", "check")
    before = datetime.now(UTC)
    rotated = await admin.rotate("acme", made.key.key_id, overlap_s=overlap_s)
    after = datetime.now(UTC)
    until = rotated.key.previous_secret_expire_time.ToDatetime(tzinfo=UTC)
    overlap = timedelta(seconds=overlap_s)
    assert before + overlap <= until <= after + overlap


async def test_a_key_expiring_at_the_end_of_the_timestamp_range_is_created_and_listed(
    app: App, channel: grpc.aio.Channel
) -> None:
    # 9999-12-31T23:59:59.999999 is stored as `infinity` and was read back naive: the
    # create answered INTERNAL after committing the key, and every ListKeys after it too.
    admin = Keys(channel, await _bootstrap(app))
    expires = Timestamp(seconds=253_402_300_799, nanos=999_999_999)
    made = await admin.create("acme", "check", expire_time=expires)
    assert made.secret
    assert (made.key.expire_time.seconds, made.key.expire_time.nanos) == (
        253_402_300_799,
        999_999_000,
    )
    listed = await admin.list(tenant="acme")
    assert made.key.key_id in [k.key_id for k in listed.keys]
    assert (await _status(channel, made.secret))[0] == ADMITTED  # not taken as expired


async def test_a_key_cannot_rotate_itself_into_scopes_it_does_not_hold(
    app: App, channel: grpc.aio.Channel
) -> None:
    # docs/auth.md: "A key never gets a scope its creator lacks". RotateKey hands the
    # caller the rotated key's new secret: an admin-only key got a working `audit` key
    # of its tenant (and cut its holder off when the overlap ended).
    platform = Keys(channel, await _bootstrap(app))
    audit_only = await platform.create("acme", "audit")
    admin_only = Keys(channel, (await platform.create("acme", "admin")).secret)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await admin_only.rotate("acme", audit_only.key.key_id)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "audit" in (refused.value.details() or "")
    assert (await _status(channel, audit_only.secret))[0] == ADMITTED  # still the holder's
    rotated = await platform.rotate("acme", audit_only.key.key_id)  # one that holds them
    assert rotated.secret


async def test_an_expired_key_is_refused_and_its_open_stream_ends(
    app: App, channel: grpc.aio.Channel
) -> None:
    admin_token = await _bootstrap(app)
    admin = Keys(channel, admin_token)
    expires = Timestamp()
    expires.FromDatetime(datetime.now(UTC) + timedelta(seconds=3))
    made = await admin.create("acme", "write", expire_time=expires)
    assert made.key.expire_time == expires
    writer = KeyedApi(channel, admin_token)
    await writer.write_schema()
    start = await writer.touch("acme", "document:one#viewer@user:ann")
    await writer.touch("acme", "document:two#viewer@user:ann")
    watch = KeyedApi(channel, made.secret).relationships.Watch(
        relationships_pb2.WatchRequest(tenant="acme", after=core_pb2.ConsistencyToken(token=start))
    )
    async with asyncio.timeout(WAIT_S):
        first = await watch.read()  # the key works: the stream is open
    assert [c.relationship.resource.object_id for c in first.changes] == ["two"]
    async with asyncio.timeout(WAIT_S):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await watch.read()  # no writes follow: the stream ends, or the timeout fails
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.value.details() == f"api key `{made.key.key_id}` expired"
    code, details = await _status(channel, made.secret)
    assert (code, details) == (
        grpc.StatusCode.UNAUTHENTICATED,
        f"api key `{made.key.key_id}` expired",
    )


async def test_revoking_through_the_rpc_ends_an_open_stream(
    app: App, channel: grpc.aio.Channel
) -> None:
    admin_token = await _bootstrap(app)
    made = await Keys(channel, admin_token).create("acme", "write")
    writer = KeyedApi(channel, admin_token)
    await writer.write_schema()
    start = await writer.touch("acme", "document:one#viewer@user:ann")
    await writer.touch("acme", "document:two#viewer@user:ann")
    watch = KeyedApi(channel, made.secret).relationships.Watch(
        relationships_pb2.WatchRequest(tenant="acme", after=core_pb2.ConsistencyToken(token=start))
    )
    async with asyncio.timeout(WAIT_S):
        await watch.read()
    await Keys(channel, admin_token).revoke("acme", made.key.key_id)
    async with asyncio.timeout(WAIT_S):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await watch.read()
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in (err.value.details() or "")


async def test_a_tenant_admin_manages_only_its_own_tenants_keys(
    app: App, channel: grpc.aio.Channel
) -> None:
    platform = Keys(channel, await _bootstrap(app))
    theirs = await platform.create("globex", "check")
    acme_admin = Keys(channel, await _bootstrap(app, "acme", frozenset({Scope.ADMIN, Scope.CHECK})))
    mine = await acme_admin.create("acme", "check")
    assert mine.key.tenant == "acme"
    refusals = [
        acme_admin.create("globex", "check"),
        acme_admin.create("*", "check"),
        acme_admin.list(),  # every tenant's keys
        acme_admin.list(tenant="globex"),
        acme_admin.revoke("globex", theirs.key.key_id),
        acme_admin.rotate("globex", theirs.key.key_id),
    ]
    for call in refusals:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Naming its own tenant does not reach another tenant's key either.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await acme_admin.revoke("acme", theirs.key.key_id)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # No key with more than its creator holds.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await acme_admin.create("acme", "audit")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "audit" in (err.value.details() or "")
    assert [k.key_id for k in (await acme_admin.list(tenant="acme")).keys] == sorted(
        k.key_id for k in (await platform.list(tenant="acme")).keys
    )
    assert (await _status(channel, theirs.secret))[0] == ADMITTED


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"tenant": "acme", "scopes": ["root"]}, "scopes"),
        ({"tenant": "acme", "scopes": []}, "scopes"),
        ({"tenant": "acme", "scopes": ["check", "write", "check"]}, "scopes"),
        ({"tenant": "acme", "scopes": ["check", "CHECK"]}, "scopes"),
        ({"tenant": "acme", "scopes": ["check"], "description": "x" * 201}, "description"),
        (
            {"tenant": "acme", "scopes": ["check"], "expire_time": Timestamp(seconds=1)},
            "expire_time",
        ),
        # No request could ever name these tenants (api/convert.py): a key for one
        # would be made and never usable.
        ({"tenant": "_acme", "scopes": ["check"]}, "tenant"),
        ({"tenant": "-acme", "scopes": ["check"]}, "tenant"),
    ],
)
async def test_bad_create_requests_name_the_field(
    app: App, channel: grpc.aio.Channel, fields: dict[str, object], field: str
) -> None:
    stub = keys_pb2_grpc.KeysServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateKey(
            keys_pb2.CreateKeyRequest(**fields),  # type: ignore[arg-type]
            metadata=bearer(await _bootstrap(app)),
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(err.value) == [field]
    assert (await app.store.keys.list("acme")) == []


async def test_a_scope_listed_twice_is_named(app: App, channel: grpc.aio.Channel) -> None:
    keys = Keys(channel, await _bootstrap(app))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await keys.create("acme", "check", "write", "Check")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "scope `Check` is listed twice" in (err.value.details() or "")


async def test_every_key_change_is_an_admin_record(pg_dsn: str, tmp_path: Path) -> None:
    settings = server_settings(pg_dsn, tmp_path, auth=True, log_mode="buffered")
    app = await start_app(settings)
    try:
        admin_record, admin_token = new_key(tenant="*", scopes=frozenset(Scope))
        await app.store.keys.create(admin_record)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            admin = Keys(channel, admin_token)
            made = await admin.create("acme", "check", reason="onboarding")
            await admin.rotate("acme", made.key.key_id)
            await admin.revoke("acme", made.key.key_id, reason="offboarding")
            await admin.list(tenant="acme")  # a read: no record
    finally:
        await app.stop(grace=1.0)  # flushes the log
    records = [
        e.entry.record
        for e in iter_entries(settings.log_dir, RecordFilter(kind=DecisionKind.ADMIN))
    ]
    assert [(r.action, r.reason) for r in records] == [
        (methods.CREATE_KEY, "onboarding"),
        (methods.ROTATE_KEY, None),
        (methods.REVOKE_KEY, "offboarding"),
    ]
    assert {r.tenant for r in records} == {"acme"}
    assert {r.resource for r in records} == {f"api_key:{made.key.key_id}"}
    assert {r.credential_id for r in records} == {admin_record.key_id}
    assert made.secret.split("_", 2)[2] not in repr(records)


class CountingTouches(MemoryKeyStore):
    def __init__(self) -> None:
        super().__init__()
        self.touches: list[dict[str, datetime]] = []

    async def touch(self, used: dict[str, datetime]) -> None:  # type: ignore[override]
        self.touches.append(dict(used))
        await super().touch(used)


async def test_last_use_is_written_in_batches_not_per_call() -> None:
    now = [0.0]
    keys = CountingTouches()
    auth = Authenticator(keys, usage_interval_s=10.0, clock=lambda: now[0])
    record, token = new_key(tenant="acme", scopes=[Scope.CHECK])
    await keys.create(record)
    for _ in range(100):
        await auth.authenticate(f"Bearer {token}")
    assert keys.touches == []  # nothing written per call
    now[0] += 10.0
    await auth.authenticate(f"Bearer {token}")
    await auth.flush_usage()  # what the server does at shutdown; also waits out the task
    assert len(keys.touches) <= 2
    assert [set(t) for t in keys.touches if t] == [{record.key_id}]
    stored = await keys.get(record.key_id)
    assert stored is not None
    assert stored.last_used_at is not None
    assert isinstance(stored, ApiKey)


async def test_previous_secret_expire_time_is_unset_once_no_previous_secret_works(
    app: App, channel: grpc.aio.Channel
) -> None:
    """keys.proto: "unset if none does"."""
    admin = Keys(channel, await _bootstrap(app))
    made = await admin.create("acme", "check")
    assert not made.key.HasField("previous_secret_expire_time")  # never rotated
    # Without an overlap the replaced secret never works, so there is no time to give.
    at_once = await admin.rotate("acme", made.key.key_id, overlap_s=0)
    assert not at_once.key.HasField("previous_secret_expire_time")
    assert (await _status(channel, made.secret))[0] == grpc.StatusCode.UNAUTHENTICATED

    rotated = await admin.rotate("acme", made.key.key_id, overlap_s=1.5)
    assert rotated.key.HasField("previous_secret_expire_time")  # in its overlap
    assert "rotated" in await _until_refused(channel, at_once.secret)  # the overlap ended
    listed = await admin.list(tenant="acme")
    assert [k.key_id for k in listed.keys] == [made.key.key_id]
    assert not listed.keys[0].HasField("previous_secret_expire_time")


async def test_a_revoked_key_reports_no_previous_secret_time(
    app: App, channel: grpc.aio.Channel
) -> None:
    """Once the key is revoked neither secret works, whatever the overlap said."""
    admin = Keys(channel, await _bootstrap(app))
    made = await admin.create("acme", "check")
    rotated = await admin.rotate("acme", made.key.key_id, overlap_s=3600)
    assert rotated.key.HasField("previous_secret_expire_time")
    revoked = await admin.revoke("acme", made.key.key_id)
    assert not revoked.key.HasField("previous_secret_expire_time")
    assert (await _status(channel, made.secret))[0] == grpc.StatusCode.UNAUTHENTICATED
