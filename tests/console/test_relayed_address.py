"""The console's calls are held off and counted by the failure backoff per browser
address, as a gRPC client's calls are by theirs (docs/auth.md "Failed attempts").

Every console call goes over one Unix socket, so the server used to see one peer,
`unix:`, for every console user: a signed-in user whose key had been revoked, loading
pages, made every other user's pages fail with RESOURCE_EXHAUSTED. Browsers come from
127.0.0.4 and 127.0.0.5 here; the limiter's clock stands still, so a backoff lasts.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2 as httpx
import pytest

from authz_service.app import App
from authz_service.credentials import Scope, new_key
from tests.console.harness import (
    HELD_OFF,
    client_from,
    freeze_backoff,
    hold_off,
    key,
    serving,
    sign_in,
)

THRESHOLD = 3
WHY = "/why?tenant=demo&resource=document:readme&permission=view&subject=user:alice"


@pytest.fixture
async def console(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[App, str]]:
    freeze_backoff(monkeypatch)
    async with serving(
        tmp_path, demo=True, auth_fail_threshold=THRESHOLD, auth_cache_ttl_s=0
    ) as running:
        yield running


def _answer(page: httpx.Response) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page.text))


async def test_a_users_failing_key_holds_off_no_other_console_user(
    console: tuple[App, str],
) -> None:
    app, base = console
    record, revoked = new_key(tenant="demo", scopes=[Scope.CHECK], name="to revoke")
    await app.store.keys.create(record)
    async with client_from(base, "127.0.0.4") as mallory, client_from(base, "127.0.0.5") as alice:
        await sign_in(mallory, revoked)
        await sign_in(alice, await key(app))
        await app.store.keys.revoke(record.key_id)
        await hold_off(base, "127.0.0.4")
        for _ in range(THRESHOLD + 1):
            await mallory.get(WHY)  # each call the server still makes fails authentication
        page = await alice.get(WHY)
        assert page.status_code == 200
        assert HELD_OFF not in page.text
        assert "ALLOWED" in _answer(page)


async def test_a_console_call_is_held_off_with_its_browsers_address(
    console: tuple[App, str],
) -> None:
    app, base = console
    api_key = await key(app)
    async with client_from(base, "127.0.0.4") as held, client_from(base, "127.0.0.5") as clean:
        await sign_in(held, api_key)
        await sign_in(clean, api_key)
        await hold_off(base, "127.0.0.4")
        assert HELD_OFF in (await held.get(WHY)).text
        assert "ALLOWED" in _answer(await clean.get(WHY))
