"""How many sessions the console keeps (docs/console.md "Session caps"): at most `max_per_key`
of one key (a new sign-in past it ends that key's oldest), `max_per_address` signed in
from one address and `max_sessions` in all (new sign-ins past either are refused, 429):
a flood of sign-ins never signs anyone else out.

The console used to keep 10,000 sessions and evict the oldest: any valid key, signing in
10,000 times in a few seconds, signed every other user out. The caps here are small; the
clock is the test's.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx2 as httpx
import pytest

from authz_service.api.auth import Authenticator
from authz_service.console.app import build_app
from authz_service.console.auth import Sessions, TooManySessions
from authz_service.credentials import Scope, new_key
from authz_service.errors import LimitExceeded
from authz_service.store.memory_keys import MemoryKeyStore
from tests.console.harness import csrf_of

HERE = "ipv4:10.0.0.1:5000"
THERE = "ipv4:10.0.0.2:5000"


class Keys:
    """Keys in a memory store, and sessions over them on the test's clock."""

    def __init__(self) -> None:
        self.store = MemoryKeyStore()
        self.now = 0.0

    async def key(self) -> str:
        record, secret = new_key(tenant="acme", scopes=[Scope.CHECK])
        await self.store.create(record)
        return secret

    def sessions(self, **caps: Any) -> Sessions:
        return Sessions(Authenticator(self.store), clock=lambda: self.now, **caps)


async def test_a_flood_of_sign_ins_signs_no_one_else_out() -> None:
    keys = Keys()
    sessions = keys.sessions(max_sessions=10)
    victim, _ = await sessions.login(await keys.key(), peer=THERE)
    flood = await keys.key()
    for _ in range(30):
        with contextlib.suppress(LimitExceeded):  # refused, once the console is full
            await sessions.login(flood, peer=HERE)
    assert await sessions.current(victim) is not None


async def test_a_keys_sign_ins_past_its_cap_end_its_own_oldest_sessions() -> None:
    keys = Keys()
    sessions = keys.sessions(max_per_key=3)
    other, _ = await sessions.login(await keys.key(), peer=HERE)
    same = await keys.key()
    ids = [(await sessions.login(same, peer=HERE))[0] for _ in range(5)]
    assert [await sessions.current(i) is not None for i in ids] == [False, False, True, True, True]
    assert await sessions.current(other) is not None


async def test_sign_ins_from_an_address_past_its_cap_are_refused() -> None:
    keys = Keys()
    sessions = keys.sessions(max_per_address=3)
    ids = [(await sessions.login(await keys.key(), peer=HERE))[0] for _ in range(3)]
    newcomer = await keys.key()
    with pytest.raises(TooManySessions, match="this address holds 3 console sessions"):
        await sessions.login(newcomer, peer="ipv4:10.0.0.1:6000")  # another port, same address
    assert (await sessions.login(newcomer, peer=THERE))[0]
    assert all([await sessions.current(i) is not None for i in ids])
    sessions.logout(ids[0])  # room again
    assert (await sessions.login(newcomer, peer=HERE))[0]


async def test_a_full_console_refuses_sign_ins_until_sessions_end() -> None:
    keys = Keys()
    sessions = keys.sessions(max_sessions=3)
    first, _ = await sessions.login(await keys.key(), peer=HERE)
    keys.now = 1000.0
    ids = [(await sessions.login(await keys.key(), peer=THERE))[0] for _ in range(2)]
    newcomer = await keys.key()
    with pytest.raises(TooManySessions, match="the most it may"):
        await sessions.login(newcomer, peer=THERE)
    keys.now = 1000.0 + sessions.idle_s - 1  # `first` has been idle too long; the others not
    assert (await sessions.login(newcomer, peer=THERE))[0]
    assert await sessions.current(first) is None
    assert all([await sessions.current(i) is not None for i in ids])


async def test_a_full_console_answers_sign_in_with_429() -> None:
    keys = Keys()
    backend: Any = None  # sign-in makes no gRPC call
    app = build_app(keys.sessions(max_sessions=1), backend, (), secure=False)
    transport = httpx.ASGITransport(app, client=("10.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as http:
        for expected in (303, 429):
            form = await http.get("/login")
            reply = await http.post(
                "/login", data={"api_key": await keys.key(), "csrf": csrf_of(form.text)}
            )
            assert reply.status_code == expected
    assert 'role="alert"' in reply.text
    assert "the most it may" in reply.text
