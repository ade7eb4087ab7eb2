"""The console's explanation graph shows, without a browser, both texts an explanation step
carries: the expression an operator step evaluated (`ExplanationNode.expression`) and why a
step was not allowed (`ExplanationNode.reason`), as the tenant's Explain sent them, and the
subject a step names (`ExplanationNode.subject`)."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2 as httpx
import pytest

from authz_service.app import App
from authz_service.model import RelationshipUpdate, UpdateOp, parse_relationship
from authz_service.service.audit import CallInfo
from tests.api.conftest import server_settings, start_app
from tests.pg import FreshDatabase

SCHEMA = """
definition user {}
definition document {
    relation viewer: user
    relation banned: user
    permission view = viewer - banned
}
"""


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    async with FreshDatabase() as dsn:
        settings = server_settings(dsn, tmp_path, auth=False, console_listen="127.0.0.1:0")
        running = await start_app(settings)
        try:
            yield running
        finally:
            await running.stop(grace=1.0)


async def _why(app: App, resource: str, permission: str, subject: str) -> str:
    """The console's answer page (its text, unescaped) to "why" asked of tenant acme."""
    assert app.console is not None
    base = f"http://127.0.0.1:{app.console.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        page = await http.get("/playground")
        match = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert match is not None
        fields = {
            "csrf": match.group(1),
            "action": "why",
            "resource": resource,
            "permission": permission,
            "subject": subject,
            "tenant": "acme",
        }
        asked = await http.post("/playground/ask", data=fields)
    assert asked.status_code == 200
    return html.unescape(asked.text)


async def test_the_graph_shows_the_expression_and_the_reason(app: App) -> None:
    await app.schemas.write(SCHEMA)
    updates = [
        RelationshipUpdate(UpdateOp.TOUCH, parse_relationship(text))
        for text in ("document:d#viewer@user:bob", "document:d#banned@user:bob")
    ]
    await app.relationships.write("acme", updates, CallInfo())
    text = await _why(app, "document:d", "view", "user:bob")
    assert 'data-testid="decision">DENIED' in text
    # The root step names the subject checked.
    assert "DENIED · for user:bob" in text
    # The exclusion step: its expression, and why it denied.
    assert "DENIED · viewer - banned · excluded by `banned`" in text
    # A relation step that found nothing says so.
    text = await _why(app, "document:d", "view", "user:carol")
    assert "no relationship `document:d#viewer` for `user:carol`" in text
