"""The console over HTTP without a browser: a server on the memory store with the console
on a loopback port, and signing in to it (the sign-in form's token first, as a browser).
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2 as httpx
import pytest

from authz_service.api.limits import FailureLimiter
from authz_service.app import App
from authz_service.credentials import Scope, new_key
from tests.api.conftest import server_settings

__all__ = [
    "client_from",
    "csrf_of",
    "freeze_backoff",
    "hold_off",
    "key",
    "login",
    "serving",
    "sign_in",
]

HELD_OFF = "too many failed authentications"


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


def client_from(base: str, address: str) -> httpx.AsyncClient:
    """A client whose connections come from `address` (a loopback one: 127.0.0.4)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=base, transport=transport, timeout=10)


async def hold_off(base: str, address: str) -> None:
    """Failed sign-ins from `address` until it backs off."""
    async with client_from(base, address) as http:
        for _ in range(100):
            if HELD_OFF in (await login(http, "azk_not-a-key")).text:
                return
    raise AssertionError(f"{address} was never held off")


def freeze_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers started after this count failures on a clock that stands still: a
    backoff, once reached, lasts (conditions, not timings)."""
    frozen = functools.partial(FailureLimiter, clock=lambda: 0.0)
    monkeypatch.setattr("authz_service.app.FailureLimiter", frozen)
