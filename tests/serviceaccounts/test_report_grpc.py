"""The service-account report over gRPC and the CLI: an unused account and an
over-privileged one are found; a used, least-privilege one is not, nor is one used only
as an agent acting for a user."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from authz_service.api.gen.authz.v1 import (
    core_pb2,
    permissions_pb2,
    tenancy_pb2,
    tenancy_pb2_grpc,
)
from authz_service.api.gen.authz.v1 import (
    service_accounts_pb2 as pb,
)
from authz_service.api.gen.authz.v1 import (
    service_accounts_pb2_grpc as pb_grpc,
)
from authz_service.app import App
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import ALLOWED, Api, bad_request_fields, subj
from tests.api.proto_comments import comment
from tests.audit.helpers import run_cli
from tests.serviceaccounts.helpers import SCHEMA, delegated

_ACCOUNTS = ("idle", "wide", "lean", "agent")


async def _old(dsn: str, *accounts: str) -> None:
    """Backdate accounts' creation, as if made long before the window."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE service_accounts SET created_at = now() - interval '90 days' "
            "WHERE account_id = any($1::text[])",
            list(accounts),
        )
    finally:
        await conn.close()


async def _world(channel: grpc.aio.Channel, dsn: str) -> None:
    api = Api(channel)
    await api.write_schema(SCHEMA)
    stub = pb_grpc.ServiceAccountsServiceStub(channel)
    for name in _ACCOUNTS:
        await stub.CreateServiceAccount(
            pb.CreateServiceAccountRequest(tenant="acme", account_id=name)
        )
    await _old(dsn, *_ACCOUNTS)
    token = await api.touch(
        "acme",
        "document:plan#editor@serviceaccount:wide",
        "document:plan#viewer@serviceaccount:wide",
        "document:memo#viewer@serviceaccount:wide",
        "document:plan#viewer@serviceaccount:lean",
        "document:plan#viewer@serviceaccount:agent",
        "document:plan#viewer@user:alice",
    )
    await tenancy_pb2_grpc.TenancyServiceStub(channel).CreateBinding(
        tenancy_pb2.CreateBindingRequest(
            tenant="acme",
            binding=core_pb2.RoleBinding(role="reader", subject=subj("serviceaccount:wide")),
        )
    )
    full = core_pb2.Consistency(fully_consistent=True)
    for who, permission in (("wide", "edit"), ("lean", "view")):
        reply = await api.permissions.Check(
            permissions_pb2.CheckRequest(
                tenant="acme",
                resource=core_pb2.ObjectReference(object_type="document", object_id="plan"),
                permission=permission,
                subject=subj(f"serviceaccount:{who}"),
                consistency=full,
            )
        )
        assert reply.decision == ALLOWED
    acting = await api.permissions.Check(
        delegated(token, "document:plan", "view", "user:alice", "serviceaccount:agent")
    )
    assert acting.decision == ALLOWED


async def test_the_report_finds_unused_and_over_privileged_accounts(
    pg_dsn: str, tmp_path: Path
) -> None:
    app: App = await start_app(server_settings(pg_dsn, tmp_path, log_mode="durable"))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            await _world(channel, pg_dsn)
            stub = pb_grpc.ServiceAccountsServiceStub(channel)
            report = await stub.ReportServiceAccounts(
                pb.ReportServiceAccountsRequest(tenant="acme")
            )
            status, out, err = await asyncio.to_thread(
                run_cli, "service-accounts", "report", "--tenant", "acme",
                "--server", f"127.0.0.1:{app.port}",
            )  # fmt: skip
    finally:
        await app.stop(grace=1.0)
    assert report.decision_log_read
    assert report.account_count == len(_ACCOUNTS)
    found = {f.account.account_id: f for f in report.findings}
    assert sorted(found) == ["idle", "wide"]
    assert found["idle"].unused
    assert not found["idle"].unexercised_grants
    wide = found["wide"]
    assert not wide.unused
    assert wide.HasField("last_decision_time")
    unexercised = list(wide.unexercised_grants)
    assert "document:plan#viewer@serviceaccount:wide" in unexercised
    assert "document:memo#viewer@serviceaccount:wide" in unexercised
    assert "document:plan#editor@serviceaccount:wide" not in unexercised  # edit was used
    assert any("role `reader`" in g and "tenant-wide" in g for g in unexercised)
    assert [("reader" in g and "tenant-wide" in g) for g in wide.broad_grants] == [True]
    assert status == 1, err
    lines = out.splitlines()
    assert lines[0].startswith("idle: UNUSED")
    assert "  unexercised: document:memo#viewer@serviceaccount:wide" in lines
    assert lines[-1] == "2 of 4 accounts flagged"


async def test_without_a_log_unused_rests_on_key_use(
    channel: grpc.aio.Channel, pg_dsn: str
) -> None:
    await _world(channel, pg_dsn)
    stub = pb_grpc.ServiceAccountsServiceStub(channel)
    report = await stub.ReportServiceAccounts(pb.ReportServiceAccountsRequest(tenant="acme"))
    assert not report.decision_log_read
    # No key of any account was used and no decision can be read: all four look unused,
    # and no grant is called unexercised on no evidence.
    assert sorted(f.account.account_id for f in report.findings if f.unused) == sorted(_ACCOUNTS)
    assert all(not f.unexercised_grants for f in report.findings)


async def test_an_account_newer_than_the_window_is_not_unused_as_the_proto_says(
    channel: grpc.aio.Channel, pg_dsn: str
) -> None:
    await Api(channel).write_schema(SCHEMA)
    stub = pb_grpc.ServiceAccountsServiceStub(channel)
    for name in ("idle", "fresh"):
        await stub.CreateServiceAccount(
            pb.CreateServiceAccountRequest(tenant="acme", account_id=name)
        )
    await _old(pg_dsn, "idle")
    report = await stub.ReportServiceAccounts(pb.ReportServiceAccountsRequest(tenant="acme"))
    # Neither has a key, a decision or a grant; only the one created before the window is
    # unused, and `fresh`, with nothing to report, is not listed.
    assert [(f.account.account_id, f.unused) for f in report.findings] == [("idle", True)]
    unused = comment("service_accounts.proto", "ServiceAccountFinding.unused")
    assert "created before the window" in unused
    listed = comment("service_accounts.proto", "ReportServiceAccountsResponse")
    assert "created within the window" in listed


_FOUR_HUNDRED_DAYS_S = 400 * 86_400


@pytest.mark.parametrize(
    "window",
    [
        Duration(seconds=0),
        Duration(seconds=59, nanos=999_999_999),
        # service_accounts.proto: "at most 400 days". The whole Duration counts, not its
        # seconds alone.
        Duration(seconds=_FOUR_HUNDRED_DAYS_S, nanos=1),
        Duration(seconds=_FOUR_HUNDRED_DAYS_S, nanos=999_999_999),
        Duration(seconds=_FOUR_HUNDRED_DAYS_S + 1),
        Duration(seconds=-1),
        Duration(seconds=120, nanos=-1),  # signs that disagree: no Duration protobuf allows
        Duration(seconds=120, nanos=1_000_000_000),  # past protobuf's range for nanos
    ],
    ids=["0", "1min-1ns", "400d+1ns", "400d+999999999ns", "400d+1s", "-1s", "-1ns", "1e9ns"],
)
async def test_a_window_out_of_range_is_refused_naming_it(
    channel: grpc.aio.Channel, window: Duration
) -> None:
    stub = pb_grpc.ServiceAccountsServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ReportServiceAccounts(
            pb.ReportServiceAccountsRequest(tenant="acme", window=window)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(caught.value) == ["window"]


@pytest.mark.parametrize(
    "window",
    [
        Duration(seconds=60),
        Duration(seconds=90, nanos=500_000_000),
        Duration(seconds=_FOUR_HUNDRED_DAYS_S),
    ],
    ids=["1min", "90.5s", "400d"],
)
async def test_a_window_in_range_starts_that_long_ago(
    channel: grpc.aio.Channel, window: Duration
) -> None:
    await Api(channel).write_schema(SCHEMA)
    stub = pb_grpc.ServiceAccountsServiceStub(channel)
    before = datetime.now(UTC)
    report = await stub.ReportServiceAccounts(
        pb.ReportServiceAccountsRequest(tenant="acme", window=window)
    )
    after = datetime.now(UTC)
    since = report.since_time.ToDatetime(tzinfo=UTC)
    assert before - window.ToTimedelta() <= since <= after - window.ToTimedelta()
