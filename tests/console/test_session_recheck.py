"""A console session's key is verified again on every request, and the session ends as
soon as it cannot be (docs/console.md "Sign-in"): a revoked key's session ends within
AUTHZ_AUTH_CACHE_TTL_S (0 here: at once), whatever failures its address has made.

The re-check used to be held off like a guess: a holder who kept their own address in
sign-in backoff kept a revoked key's session alive, and with it the pages and calls it
drove. It is the holder's key, never a guess, so it is neither held off nor counted; and
neither other people's failures nor the holder's own end a session whose key is valid.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from authz_service.api.auth import Authenticator
from authz_service.console.auth import Sessions
from authz_service.credentials import ApiKey, Scope, new_key
from authz_service.errors import Unavailable
from authz_service.store.memory_keys import MemoryKeyStore
from tests.console.harness import client_from, freeze_backoff, hold_off, serving, sign_in


async def test_a_revoked_keys_session_ends_while_its_address_backs_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    freeze_backoff(monkeypatch)
    async with serving(tmp_path, auth_fail_threshold=3, auth_cache_ttl_s=0) as (app, base):
        record, revoked = new_key(tenant="*", scopes=[Scope.CHECK], name="to revoke")
        await app.store.keys.create(record)
        async with client_from(base, "127.0.0.4") as http:
            await sign_in(http, revoked)
            await app.store.keys.revoke(record.key_id)
            await hold_off(base, "127.0.0.4")
            page = await http.get("/playground")
            assert page.status_code == 303
            assert page.headers["location"] == "/login?next=/playground"


async def test_a_valid_session_outlives_its_addresses_backoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone else behind the same address (a proxy, a NAT) guessing keys."""
    freeze_backoff(monkeypatch)
    async with serving(tmp_path, auth_fail_threshold=3, auth_cache_ttl_s=0) as (app, base):
        record, valid = new_key(tenant="*", scopes=[Scope.CHECK], name="valid")
        await app.store.keys.create(record)
        async with client_from(base, "127.0.0.4") as http:
            await sign_in(http, valid)
            await hold_off(base, "127.0.0.4")
            assert (await http.get("/playground")).status_code == 200


class _Outage(MemoryKeyStore):
    """A key store that stops answering when told to."""

    down = False

    async def get(self, key_id: str) -> ApiKey | None:
        if self.down:
            raise Unavailable("the key store cannot be reached")
        return await super().get(key_id)


async def test_a_session_whose_key_cannot_be_verified_ends() -> None:
    """Deny by default, as an open stream does: a session never runs on a key that could
    not be verified once its cache entry expired (at once with a TTL of 0)."""
    keys = _Outage()
    record, secret = new_key(tenant="*", scopes=[Scope.CHECK])
    await keys.create(record)
    sessions = Sessions(Authenticator(keys, ttl_s=0))
    session_id, _ = await sessions.login(secret, peer="ipv4:10.0.0.1:5000")
    assert await sessions.current(session_id) is not None
    keys.down = True
    assert await sessions.current(session_id) is None
    keys.down = False
    assert await sessions.current(session_id) is None  # ended, not suspended
