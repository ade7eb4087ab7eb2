"""Service accounts over gRPC with API keys on: create, key create / use / rotate with
an overlap / expire / revoke, disable and enable, delete; each change an admin record;
bad input names the field."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from authz_service.api.gen.authz.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
)
from authz_service.api.gen.authz.v1 import (
    service_accounts_pb2 as pb,
)
from authz_service.api.gen.authz.v1 import (
    service_accounts_pb2_grpc as pb_grpc,
)
from authz_service.app import App
from authz_service.config import Settings
from authz_service.credentials import Scope, new_key
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import ALLOWED, DENIED, Api, bad_request_fields
from tests.api.test_auth import until
from tests.serviceaccounts.helpers import SCHEMA
from tests.tenancy.helpers import KeyedChannel

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


@contextlib.asynccontextmanager
async def _serving(settings: Settings) -> AsyncIterator[tuple[App, grpc.aio.Channel]]:
    app = await start_app(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield app, channel
    finally:
        await app.stop(grace=1.0)


async def _admin(app: App, channel: grpc.aio.Channel, tenant: str = "*") -> KeyedChannel:
    record, token = new_key(tenant=tenant, scopes=frozenset(Scope))
    await app.store.keys.create(record)
    return KeyedChannel(channel, token)


def _accounts(keyed: KeyedChannel) -> pb_grpc.ServiceAccountsServiceStub:
    return pb_grpc.ServiceAccountsServiceStub(keyed)  # type: ignore[arg-type]


async def _check_as(channel: grpc.aio.Channel, token: str) -> Any:
    """A check made with `token`: the workload calling the API."""
    return await Api(KeyedChannel(channel, token)).check(  # type: ignore[arg-type]
        "acme", "document:plan", "view", "serviceaccount:ci", full=True
    )


async def _refused(call: Callable[[], Awaitable[Any]]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call()
    return caught.value.code()


async def _world(app: App, channel: grpc.aio.Channel) -> tuple[KeyedChannel, Any, Any]:
    """A platform admin, the `ci` account viewing `document:plan`, and a `check` key of
    it: (admin channel, accounts stub, CreateServiceAccountKeyResponse)."""
    admin = await _admin(app, channel)
    await Api(admin).write_schema(SCHEMA)  # type: ignore[arg-type]
    accounts = _accounts(admin)
    made = await accounts.CreateServiceAccount(
        pb.CreateServiceAccountRequest(
            tenant="acme", account_id="ci", description="CI pipeline", reason="INFRA-1"
        )
    )
    assert made.account.subject.object.object_type == "serviceaccount"
    assert not made.account.HasField("disable_time")
    await Api(admin).touch("acme", "document:plan#viewer@serviceaccount:ci")  # type: ignore[arg-type]
    created = await accounts.CreateServiceAccountKey(
        pb.CreateServiceAccountKeyRequest(
            tenant="acme", account_id="ci", scopes=["check"], description="deploys"
        )
    )
    assert created.key.service_account == "ci"
    assert created.key.tenant == "acme"
    assert (await _check_as(channel, created.secret)).decision == ALLOWED
    return admin, accounts, created


async def test_keys_rotate_with_an_overlap_and_expire(pg_dsn: str, tmp_path: Path) -> None:
    async with _serving(server_settings(pg_dsn, tmp_path, auth=True)) as (app, channel):
        admin, accounts, created = await _world(app, channel)
        first = created.secret
        # Rotation with an overlap: the old and the new secret both work.
        keys = keys_pb2_grpc.KeysServiceStub(admin)  # type: ignore[arg-type]
        rotated = await keys.RotateKey(
            keys_pb2.RotateKeyRequest(
                tenant="acme", key_id=created.key.key_id,
                overlap=duration_pb2.Duration(seconds=3600),
            )
        )  # fmt: skip
        second = rotated.secret
        assert (await _check_as(channel, first)).decision == ALLOWED
        assert (await _check_as(channel, second)).decision == ALLOWED
        # Without an overlap the replaced secret is refused at once.
        third = await keys.RotateKey(
            keys_pb2.RotateKeyRequest(
                tenant="acme", key_id=created.key.key_id,
                overlap=duration_pb2.Duration(seconds=0),
            )
        )  # fmt: skip
        assert await _refused(lambda: _check_as(channel, second)) == UNAUTHENTICATED
        assert (await _check_as(channel, third.secret)).decision == ALLOWED

        # A key that expires stops working on its own.
        soon = datetime.now(UTC) + timedelta(seconds=2)
        expiring = await accounts.CreateServiceAccountKey(
            pb.CreateServiceAccountKeyRequest(
                tenant="acme", account_id="ci", scopes=["check"],
                expire_time=timestamp_pb2.Timestamp(seconds=int(soon.timestamp()) + 1),
            )
        )  # fmt: skip
        assert (await _check_as(channel, expiring.secret)).decision == ALLOWED

        async def expired() -> bool:
            try:
                await _check_as(channel, expiring.secret)
            except grpc.aio.AioRpcError as exc:
                return exc.code() == UNAUTHENTICATED
            return False

        await until(expired)
        listed = await accounts.ListServiceAccountKeys(
            pb.ListServiceAccountKeysRequest(tenant="acme", account_id="ci")
        )
        revoked = await keys.RevokeKey(
            keys_pb2.RevokeKeyRequest(tenant="acme", key_id=created.key.key_id)
        )
        assert await _refused(lambda: _check_as(channel, third.secret)) == UNAUTHENTICATED
    assert sorted(k.key_id for k in listed.keys) == sorted(
        [created.key.key_id, expiring.key.key_id]
    )
    assert revoked.key.service_account == "ci"


async def test_disable_enable_and_delete_are_admin_records(pg_dsn: str, tmp_path: Path) -> None:
    settings = server_settings(pg_dsn, tmp_path, auth=True, log_mode="durable")
    async with _serving(settings) as (app, channel):
        admin, accounts, created = await _world(app, channel)
        key = created.secret
        # Disabled: decisions about it are denied and its keys refused; enabled: both back.
        disabled = await accounts.DisableServiceAccount(
            pb.DisableServiceAccountRequest(tenant="acme", account_id="ci", reason="incident 9")
        )
        assert disabled.account.HasField("disable_time")
        assert await _refused(lambda: _check_as(channel, key)) == UNAUTHENTICATED
        denied = await Api(admin).check(  # type: ignore[arg-type]
            "acme", "document:plan", "view", "serviceaccount:ci", fresh=disabled.written_at.token
        )
        assert denied.decision == DENIED
        new_key_refused = await _refused(
            lambda: accounts.CreateServiceAccountKey(
                pb.CreateServiceAccountKeyRequest(tenant="acme", account_id="ci", scopes=["check"])
            )
        )
        assert new_key_refused == grpc.StatusCode.FAILED_PRECONDITION
        await accounts.EnableServiceAccount(
            pb.EnableServiceAccountRequest(tenant="acme", account_id="ci", reason="resolved")
        )
        assert (await _check_as(channel, key)).decision == ALLOWED

        # Deleted: its grants and keys go with it.
        deleted = await accounts.DeleteServiceAccount(
            pb.DeleteServiceAccountRequest(tenant="acme", account_id="ci", reason="retired")
        )
        assert deleted.removed_relationship_count == 1
        assert list(deleted.revoked_key_ids) == [created.key.key_id]
        assert await _refused(lambda: _check_as(channel, key)) == UNAUTHENTICATED
        gone = await _refused(
            lambda: accounts.GetServiceAccount(
                pb.GetServiceAccountRequest(tenant="acme", account_id="ci")
            )
        )
        assert gone == grpc.StatusCode.NOT_FOUND
        audit = audit_pb2_grpc.AuditServiceStub(admin)  # type: ignore[arg-type]
        query = audit_pb2.QueryDecisionsRequest(tenant="acme", kind=audit_pb2.DECISION_KIND_ADMIN)
        records = [r.record async for r in audit.QueryDecisions(query)]
    actions = [r.action.rsplit("/", 1)[-1] for r in records]
    assert actions == [
        "CreateServiceAccount",
        "WriteRelationships",
        "CreateKey",
        "SuspendSubject",
        "DisableServiceAccount",
        "ReactivateSubject",
        "EnableServiceAccount",
        "DeprovisionSubject",
        "RevokeKey",
        "DeleteServiceAccount",
    ]
    disabling = records[actions.index("DisableServiceAccount")]
    assert disabling.reason == "incident 9"
    assert disabling.subject.object.object_id == "ci"


async def test_last_key_use_is_shown(pg_dsn: str, tmp_path: Path) -> None:
    settings = server_settings(pg_dsn, tmp_path, auth=True)
    before = datetime.now(UTC)
    async with _serving(settings) as (app, channel):
        admin = await _admin(app, channel)
        await Api(admin).write_schema(SCHEMA)  # type: ignore[arg-type]
        accounts = _accounts(admin)
        await accounts.CreateServiceAccount(
            pb.CreateServiceAccountRequest(tenant="acme", account_id="ci")
        )
        got = await accounts.GetServiceAccount(
            pb.GetServiceAccountRequest(tenant="acme", account_id="ci")
        )
        assert not got.account.HasField("last_key_use_time")
        created = await accounts.CreateServiceAccountKey(
            pb.CreateServiceAccountKeyRequest(tenant="acme", account_id="ci", scopes=["check"])
        )
        await _check_as(channel, created.secret)
    # Stopping writes the pending last-use times; a new server reads them back.
    async with _serving(settings) as (app, channel):
        admin = await _admin(app, channel)
        got = await _accounts(admin).GetServiceAccount(
            pb.GetServiceAccountRequest(tenant="acme", account_id="ci")
        )
        listed = await _accounts(admin).ListServiceAccounts(
            pb.ListServiceAccountsRequest(tenant="acme")
        )
    assert got.account.last_key_use_time.ToDatetime(tzinfo=UTC) >= before.replace(microsecond=0)
    assert [a.last_key_use_time for a in listed.accounts] == [got.account.last_key_use_time]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.CreateServiceAccountRequest(tenant="acme", account_id=""), "account_id"),
        (pb.CreateServiceAccountRequest(tenant="acme", account_id="Bad Id"), "account_id"),
        (pb.CreateServiceAccountRequest(tenant="acme", account_id="x" * 65), "account_id"),
        (pb.CreateServiceAccountRequest(tenant="acme", account_id="ci", description="a\nb"),
         "description"),
        (pb.CreateServiceAccountRequest(tenant="acme", account_id="ci", reason="r" * 2000),
         "reason"),
        (pb.CreateServiceAccountRequest(tenant="bad tenant", account_id="ci"), "tenant"),
        (pb.CreateServiceAccountKeyRequest(tenant="acme", account_id="ci"), "scopes"),
        (pb.CreateServiceAccountKeyRequest(tenant="acme", account_id="ci", scopes=["root"]),
         "scopes"),
        (pb.CreateServiceAccountKeyRequest(
            tenant="acme", account_id="ci", scopes=["check"],
            expire_time=timestamp_pb2.Timestamp(seconds=-5)), "expire_time"),
        (pb.ReportServiceAccountsRequest(
            tenant="acme", window=duration_pb2.Duration(seconds=5)), "window"),
        (pb.GetServiceAccountRequest(tenant="acme", account_id="-x"), "account_id"),
    ],
)  # fmt: skip
async def test_bad_input_names_the_field(
    channel: grpc.aio.Channel, app: App, request_: Any, field: str
) -> None:
    await Api(channel).write_schema(SCHEMA)
    stub = pb_grpc.ServiceAccountsServiceStub(channel)
    method = {
        pb.CreateServiceAccountRequest: stub.CreateServiceAccount,
        pb.CreateServiceAccountKeyRequest: stub.CreateServiceAccountKey,
        pb.ReportServiceAccountsRequest: stub.ReportServiceAccounts,
        pb.GetServiceAccountRequest: stub.GetServiceAccount,
    }[type(request_)]
    if isinstance(request_, pb.CreateServiceAccountKeyRequest):
        await stub.CreateServiceAccount(
            pb.CreateServiceAccountRequest(tenant="acme", account_id="ci")
        )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await method(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(caught.value) == [field]
    listed = await stub.ListServiceAccounts(pb.ListServiceAccountsRequest(tenant="acme"))
    expected = ["ci"] if isinstance(request_, pb.CreateServiceAccountKeyRequest) else []
    assert [a.account_id for a in listed.accounts] == expected  # nothing half-written


async def test_a_schema_without_the_type_and_a_taken_id_are_refused(
    channel: grpc.aio.Channel,
) -> None:
    stub = pb_grpc.ServiceAccountsServiceStub(channel)
    await Api(channel).write_schema("definition user {}")
    request = pb.CreateServiceAccountRequest(tenant="acme", account_id="ci")
    assert await _refused(lambda: stub.CreateServiceAccount(request)) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    await Api(channel).write_schema(SCHEMA)
    await stub.CreateServiceAccount(request)
    assert await _refused(lambda: stub.CreateServiceAccount(request)) == (
        grpc.StatusCode.ALREADY_EXISTS
    )
    other = pb.CreateServiceAccountRequest(tenant="globex", account_id="ci")
    await stub.CreateServiceAccount(other)  # ids are per tenant
    missing = pb.GetServiceAccountRequest(tenant="acme", account_id="nobody")
    assert await _refused(lambda: stub.GetServiceAccount(missing)) == grpc.StatusCode.NOT_FOUND
