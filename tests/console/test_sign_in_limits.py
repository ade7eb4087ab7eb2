"""Failed console sign-ins are held off per client address, the same count as gRPC's
(docs/console.md "Sign-in", docs/auth.md "Failed attempts"), without a browser.

The console used to name every IPv4 client `ipv4` and every IPv6 one `ipv6:[` once the
limiter had cut what it took for a port, so ten bad sign-ins from anyone held off
sign-in for every console user. The app tests run on a clock that never moves (a
backoff never ends on its own), with the client address set by the ASGI transport; the
last test signs in over the real listener from two loopback addresses.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from authz_service.api.auth import Authenticator
from authz_service.api.limits import FailureLimiter
from authz_service.app import App
from authz_service.console.app import build_app
from authz_service.console.auth import Sessions
from authz_service.credentials import Scope, new_key
from authz_service.errors import Unauthenticated
from authz_service.store.memory_keys import MemoryKeyStore
from tests.api.conftest import server_settings

HELD_OFF = "too many failed authentications"
THRESHOLD = 3


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


async def _login(http: httpx.AsyncClient, key: str) -> httpx.Response:
    form = await http.get("/login")
    return await http.post("/login", data={"api_key": key, "next": "/", "csrf": _csrf(form.text)})


class Console:
    """The console app on an authenticator whose clock stands still."""

    def __init__(self) -> None:
        self.keys = MemoryKeyStore()
        limiter = FailureLimiter(threshold=THRESHOLD, clock=lambda: 0.0)
        self.authenticator = Authenticator(self.keys, limiter=limiter, clock=lambda: 0.0)
        backend: Any = None  # sign-in makes no gRPC call
        self.app = build_app(Sessions(self.authenticator), backend, (), secure=False)
        self._port = 40000

    async def key(self) -> tuple[str, str]:
        """A good key and the same key id with a wrong secret."""
        record, good = new_key(tenant="acme", scopes=[Scope.CHECK])
        await self.keys.create(record)
        return good, f"azk_{record.key_id}_" + "A" * 43

    async def sign_in(self, host: str, key: str) -> str:
        """`signed in`, `refused` or `held off`, from `host` on a new connection."""
        self._port += 1  # a new connection, a new port: the count must not start again
        transport = httpx.ASGITransport(self.app, client=(host, self._port))
        async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as http:
            reply = await _login(http, key)
        if reply.status_code == 303:
            return "signed in"
        assert reply.status_code == 401, reply.text
        return "held off" if HELD_OFF in reply.text else "refused"


@pytest.mark.parametrize(("here", "there"), [("10.0.0.1", "10.0.0.2"), ("::1", "::2")])
async def test_failed_sign_ins_hold_off_their_own_address_only(here: str, there: str) -> None:
    console = Console()
    good, wrong = await console.key()
    for _ in range(THRESHOLD):
        assert await console.sign_in(here, wrong) == "refused"
    # The guessing address is held off, even with the right key ...
    assert await console.sign_in(here, good) == "held off"
    # ... every other address is not.
    assert await console.sign_in(there, good) == "signed in"
    assert await console.sign_in(here, good) == "held off"


@pytest.mark.parametrize(
    ("grpc_peer", "client"),
    [
        ("ipv4:10.0.0.1:5123", "10.0.0.1"),
        ("ipv6:%5B::1%5D:5123", "::1"),  # how grpc writes an IPv6 peer
        ("ipv4:10.0.0.1:5123", "::ffff:10.0.0.1"),  # a dual-stack listener's IPv4 client
    ],
)
async def test_failures_over_grpc_hold_off_the_same_address_in_the_console(
    grpc_peer: str, client: str
) -> None:
    console = Console()
    good, wrong = await console.key()
    for _ in range(THRESHOLD):  # what the gRPC interceptor does with context.peer()
        with pytest.raises(Unauthenticated):
            await console.authenticator.authenticate(f"Bearer {wrong}", peer=grpc_peer)
    assert await console.sign_in(client, good) == "held off"
    assert await console.sign_in("10.9.9.9", good) == "signed in"


@pytest.fixture
async def listening(tmp_path: Path) -> AsyncIterator[tuple[App, str]]:
    """A server with the console on a loopback port, and the console's base URL."""
    settings = server_settings(
        "memory://",
        tmp_path,
        auth=True,
        auth_fail_threshold=THRESHOLD,
        console_listen="127.0.0.1:0",
    )
    app = await App.start(settings)
    try:
        assert app.console is not None
        yield app, f"http://127.0.0.1:{app.console.port}"
    finally:
        await app.stop(grace=1.0)


async def test_over_the_listener_a_guessing_address_does_not_lock_out_another(
    listening: tuple[App, str],
) -> None:
    app, base = listening
    record, good = new_key(tenant="acme", scopes=[Scope.CHECK], name="console")
    await app.store.keys.create(record)
    guesser = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=base, transport=guesser, timeout=10) as http:
        replies = [(await _login(http, "azk_abcdefghijkm_" + "A" * 43)).text]
        while HELD_OFF not in replies[-1] and len(replies) < 50:
            replies.append((await _login(http, "azk_abcdefghijkm_" + "A" * 43)).text)
    assert HELD_OFF in replies[-1]  # 127.0.0.2 is held off now, or was a moment ago
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:  # from 127.0.0.1
        reply = await _login(http, good)
    assert reply.status_code == 303, reply.text


async def test_over_the_listener_a_forwarded_for_header_is_not_the_address(
    listening: tuple[App, str],
) -> None:
    """uvicorn trusts X-Forwarded-For from 127.0.0.1 by default: a local guesser that
    named a new address in every request was never held off."""
    _app, base = listening
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        replies = []
        for i in range(20):
            http.headers["X-Forwarded-For"] = f"10.2.{i}.1"
            replies.append((await _login(http, "azk_abcdefghijkm_" + "A" * 43)).text)
    assert HELD_OFF in replies[-1]
