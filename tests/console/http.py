"""The console over HTTP without a browser: a server on the memory store with the console
on a loopback port, and signing in to it (the sign-in form's token first, as a browser).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2 as httpx

from authz_service.app import App
from authz_service.credentials import Scope, new_key
from tests.api.conftest import server_settings

__all__ = ["csrf_of", "key", "login", "serving", "sign_in"]


@asynccontextmanager
async def serving(tmp_path: Path, **settings: object) -> AsyncIterator[tuple[App, str]]:
    """A running server with the console, and the console's base URL."""
    defaults: dict[str, object] = {"auth": True, "console_listen": "127.0.0.1:0"}
    app = await App.start(server_settings("memory://", tmp_path, **{**defaults, **settings}))
    try:
        assert app.console is not None
        yield app, f"http://127.0.0.1:{app.console.port}"
    finally:
        await app.stop(grace=1.0)


async def key(app: App, tenant: str = "*", scopes: tuple[Scope, ...] = (Scope.CHECK,)) -> str:
    record, secret = new_key(tenant=tenant, scopes=scopes, name="console test")
    await app.store.keys.create(record)
    return secret


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


async def login(http: httpx.AsyncClient, api_key: str) -> httpx.Response:
    form = await http.get("/login")
    return await http.post(
        "/login", data={"api_key": api_key, "next": "/", "csrf": csrf_of(form.text)}
    )


async def sign_in(http: httpx.AsyncClient, api_key: str) -> str:
    """Signs in; the CSRF token of the new session."""
    reply = await login(http, api_key)
    assert reply.status_code == 303, reply.text
    home = await http.get("/")
    assert home.status_code == 200
    return csrf_of(home.text)
