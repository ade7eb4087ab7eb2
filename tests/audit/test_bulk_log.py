"""CheckBulk's records in a durable log: all of them, in order, after one fsync."""

from __future__ import annotations

import asyncio
import json

from tests.api.helpers import Api

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
