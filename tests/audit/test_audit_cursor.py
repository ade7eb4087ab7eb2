"""QueryDecisions cursors: later pages read the log as the first page found it (records
appended since are not in them), and a cursor works only for its tenant, filters and
method."""

from __future__ import annotations

import asyncio

from authz_service.api.gen.authz.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    core_pb2,
    relationships_pb2,
)
from tests.api.cursor_helpers import collect, cursor_refused, tampered
from tests.api.helpers import Api, subj

from .helpers import QUESTIONS, SCHEMA, LogSetup, channel_to, check, running, setup_world

Query = audit_pb2.QueryDecisionsRequest
_CHECKS = audit_pb2.DECISION_KIND_CHECK


def _ids(replies: list[audit_pb2.QueryDecisionsResponse]) -> list[str]:
    return [r.record.decision_id for r in replies]


async def test_later_pages_read_the_log_as_the_first_page_found_it(log_setup: LogSetup) -> None:
    async with asyncio.timeout(120), running(log_setup) as app, channel_to(app) as channel:
        api = Api(channel)
        await api.write_schema(SCHEMA)
        await setup_world(api, "acme")
        made = [(await check(api, "acme", q)).decision_id for q in QUESTIONS]
        stub = audit_pb2_grpc.AuditServiceStub(channel)

        first = await collect(stub.QueryDecisions(Query(tenant="acme", kind=_CHECKS, limit=3)))
        assert _ids(first) == made[:3]
        appended = [(await check(api, "acme", q)).decision_id for q in QUESTIONS[:2]]
        everything = await collect(stub.QueryDecisions(Query(tenant="acme", kind=_CHECKS)))
        assert _ids(everything) == made + appended  # the new records are in the log

        cursor = first[-1].cursor
        rest = await collect(stub.QueryDecisions(Query(tenant="acme", kind=_CHECKS, cursor=cursor)))
        assert _ids(first) + _ids(rest) == made
        one = await collect(
            stub.QueryDecisions(Query(tenant="acme", kind=_CHECKS, cursor=cursor, limit=1))
        )
        assert _ids(one) == made[3:4]
        tail = await collect(
            stub.QueryDecisions(Query(tenant="acme", kind=_CHECKS, cursor=one[-1].cursor))
        )
        assert _ids(tail) == made[4:]


async def test_a_cursor_works_only_where_it_was_issued(log_setup: LogSetup) -> None:
    async with asyncio.timeout(120), running(log_setup) as app, channel_to(app) as channel:
        api = Api(channel)
        await api.write_schema(SCHEMA)
        for tenant in ("acme", "globex"):
            await setup_world(api, tenant)
            for q in QUESTIONS:
                await check(api, tenant, q)
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        first = await collect(stub.QueryDecisions(Query(tenant="acme", kind=_CHECKS, limit=2)))
        cursor = first[-1].cursor

        def query(**fields: object) -> object:
            return stub.QueryDecisions(Query(**fields))  # type: ignore[arg-type]

        await cursor_refused(query(tenant="globex", kind=_CHECKS, cursor=cursor), "another tenant")
        await cursor_refused(
            query(tenant="acme", kind=_CHECKS, subject=subj("user:bob"), cursor=cursor),
            "another request",
        )
        await cursor_refused(query(tenant="acme", cursor=cursor), "another request")
        for token in tampered(cursor.token):
            await cursor_refused(
                query(tenant="acme", kind=_CHECKS, cursor=core_pb2.Cursor(token=token)),
                "not a cursor this service issued",
            )
        read = relationships_pb2.ReadRelationshipsRequest(
            tenant="acme", filter=core_pb2.RelationshipFilter(resource_type="document"), limit=1
        )
        (row,) = await collect(api.relationships.ReadRelationships(read))
        await cursor_refused(
            query(tenant="acme", kind=_CHECKS, cursor=row.cursor), "ReadRelationships"
        )
        read.cursor.CopyFrom(cursor)
        await cursor_refused(api.relationships.ReadRelationships(read), "QueryDecisions")
        rest = await collect(query(tenant="acme", kind=_CHECKS, cursor=cursor))  # type: ignore[arg-type]
        assert len(first) + len(rest) == len(QUESTIONS)
