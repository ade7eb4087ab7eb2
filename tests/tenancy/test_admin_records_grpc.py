"""Administrative records answer "who did what to whom": over gRPC with API keys on and a
durable log, QueryDecisions(kind=ADMIN, subject=user:erin) finds the deprovisioning of
erin, with the full method name as action, erin as subject, the key as actor and the
reason given, and the changed records still verify."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from authz_service.api.gen.authz.v1 import audit_pb2, audit_pb2_grpc, core_pb2, tenancy_pb2
from authz_service.app import App
from authz_service.credentials import Scope, new_key
from authz_service.decisionlog import generate_keypair, load_public_key
from authz_service.service.log_reader import verify_log
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import Api, obj, subj
from tests.tenancy.helpers import SCHEMA, KeyedChannel, tenancy_stub

_ADMIN = audit_pb2.DECISION_KIND_ADMIN
_TENANCY = "/authz.v1.TenancyService"


@contextlib.asynccontextmanager
async def _server(pg_dsn: str, tmp_path: Path, private: Path) -> AsyncIterator[App]:
    settings = server_settings(
        pg_dsn, tmp_path, auth=True, log_mode="durable", log_signing_key=str(private)
    )
    running = await start_app(settings)
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


async def _keyed(app: App, channel: grpc.aio.Channel, tenant: str) -> tuple[str, KeyedChannel]:
    record, token = new_key(tenant=tenant, scopes=frozenset(Scope))
    await app.store.keys.create(record)  # type: ignore[attr-defined]
    return record.key_id, KeyedChannel(channel, token)


async def _admin_records(keyed: KeyedChannel, **filters: object) -> list[audit_pb2.DecisionRecord]:
    stub = audit_pb2_grpc.AuditServiceStub(keyed)  # type: ignore[arg-type]
    request = audit_pb2.QueryDecisionsRequest(tenant="acme", kind=_ADMIN, **filters)  # type: ignore[arg-type]
    return [reply.record async for reply in stub.QueryDecisions(request)]


async def test_who_deprovisioned_erin(pg_dsn: str, tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path / "keys")
    async with (
        _server(pg_dsn, tmp_path, private) as app,
        grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel,
    ):
        _, platform = await _keyed(app, channel, "*")
        await Api(platform).write_schema(SCHEMA)  # type: ignore[arg-type]
        key_id, acme = await _keyed(app, channel, "acme")
        await Api(acme).touch(  # type: ignore[arg-type]
            "acme", "folder:plans#viewer@user:erin", "folder:plans#viewer@user:frank"
        )
        tenancy = tenancy_stub(acme)
        await tenancy.CreateBinding(
            tenancy_pb2.CreateBindingRequest(
                tenant="acme",
                binding=core_pb2.RoleBinding(role="auditor", subject=subj("user:erin")),
            )
        )
        await tenancy.SuspendSubject(
            tenancy_pb2.SuspendSubjectRequest(
                tenant="acme", subject=obj("user:frank"), reason="on leave"
            )
        )
        await tenancy.DeprovisionSubject(
            tenancy_pb2.DeprovisionSubjectRequest(
                tenant="acme", subject=obj("user:erin"), reason="left the company, HR-118"
            )
        )

        about_erin = await _admin_records(acme, subject=subj("user:erin"))
        assert [r.action for r in about_erin] == [
            f"{_TENANCY}/CreateBinding",
            f"{_TENANCY}/DeprovisionSubject",
        ]
        gone = about_erin[-1]
        assert (gone.subject.object.object_type, gone.subject.object.object_id) == ("user", "erin")
        assert gone.reason == "left the company, HR-118"
        assert gone.credential_id == key_id
        assert (gone.actor.object.object_type, gone.actor.object.object_id) == ("api_key", key_id)
        assert gone.decision == core_pb2.DECISION_ALLOWED  # applied
        assert "reason" not in gone.details  # at the top level, not repeated in details
        assert list(gone.details["removed_relationships"]) == ["folder:plans#viewer@user:erin"]

        by_action = await _admin_records(acme, action=f"{_TENANCY}/SuspendSubject")
        assert [(r.subject.object.object_id, r.reason) for r in by_action] == [
            ("frank", "on leave")
        ]
        writes = await _admin_records(
            acme, action="/authz.v1.RelationshipsService/WriteRelationships"
        )
        assert len(writes) == 1
        assert not writes[0].HasField("subject")  # a write is not about one subject

        by_key = await _admin_records(acme, actor=subj(f"api_key:{key_id}"))
        assert len(by_key) == 4  # the write, the binding, the suspension, the deprovisioning

    # Stopped (final checkpoint written): the changed records chain and verify as before.
    reports = verify_log(tmp_path / "decisions", load_public_key(public), tenant="acme")
    assert [(r.ok, r.records) for _, r in reports] == [(True, 4)]
