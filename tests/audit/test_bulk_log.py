"""CheckBulk's records in a durable log: all of them, in order, after one fsync."""

from __future__ import annotations

import asyncio
import json

from authz_service.api.gen.authz.v1 import permissions_pb2
from tests.api.helpers import Api, obj, subj

from .helpers import QUESTIONS, SCHEMA, LogSetup, channel_to, check_bulk, running, setup_world


async def test_a_durable_check_bulk_is_logged_item_by_item_with_one_fsync(
    log_setup: LogSetup,
) -> None:
    questions = QUESTIONS * 10  # 60 items
    async with asyncio.timeout(120), running(log_setup) as app, channel_to(app) as channel:
        api = Api(channel)
        await api.write_schema(SCHEMA)
        await setup_world(api, "acme")
        assert app.writer is not None
        before = app.writer.stats()
        made = await check_bulk(api, "acme", questions)
        after = app.writer.stats()
        lines = [
            json.loads(line)
            for path in sorted(log_setup.log_dir.rglob("*.jsonl"))
            for line in path.read_text().splitlines()
        ]
    # Durable: every record was on disk when the answer came back, and one fsync (one
    # batch) covered the 60 of them, not one each.
    assert after.written - before.written == len(questions)
    assert after.fsyncs - before.fsyncs == 1
    items = [r for r in lines if r.get("kind") == "check_bulk_item"]
    assert [r["decision_id"] for r in items] == [m.decision_id for m in made]
    assert [r["decision"] for r in items] == [m.decision for m in made]
    assert [(r["resource"], r["action"], r["subject"]) for r in items] == list(questions)
    assert len({m.decision_id for m in made}) == len(questions)


async def test_items_answered_from_the_cache_are_logged_as_cache_hits(
    log_setup: LogSetup,
) -> None:
    # The same two items twice, then with a third: the second call's items and the
    # third call's first two are answered from the decision cache, the rest evaluated.
    calls = (QUESTIONS[:2], QUESTIONS[:2], QUESTIONS[:3])
    async with asyncio.timeout(120), running(log_setup) as app, channel_to(app) as channel:
        api = Api(channel)
        await api.write_schema(SCHEMA)
        token = await setup_world(api, "acme")
        for questions in calls:
            request = permissions_pb2.CheckBulkRequest(tenant="acme")
            request.consistency.at_least_as_fresh.token = token  # may share cached answers
            for resource, permission, subject in questions:
                request.items.add(
                    resource=obj(resource), permission=permission, subject=subj(subject)
                )
            await api.permissions.CheckBulk(request)
    lines = [
        json.loads(line)
        for path in sorted(log_setup.log_dir.rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    items = [r for r in lines if r.get("kind") == "check_bulk_item"]
    asked = [(r["resource"], r["action"], r["subject"]) for r in items]
    assert asked == [q for questions in calls for q in questions]
    assert [r["cache_hit"] for r in items] == [False, False, True, True, True, True, False]
