"""API key format, hashing and scopes (authz_service.credentials)."""

from __future__ import annotations

import pytest

from authz_service.credentials import (
    ALL_TENANTS,
    Scope,
    hash_secret,
    new_key,
    parse_scopes,
    split_token,
)
from authz_service.errors import InvalidArgument


def test_a_new_key_stores_only_a_digest_of_its_secret() -> None:
    record, token = new_key(tenant="acme", scopes=[Scope.CHECK], name="ci")
    prefix, key_id, secret = token.split("_", 2)
    assert (prefix, key_id) == ("azk", record.key_id)
    assert len(key_id) == 12
    assert len(secret) >= 43  # 32 random bytes, urlsafe base64
    assert record.secret_hash == hash_secret(secret)
    assert secret.encode() not in repr(record).encode()
    assert record.matches(secret)
    assert not record.matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"))


def test_keys_are_unique() -> None:
    tokens = {new_key(tenant="acme", scopes=[Scope.CHECK])[1] for _ in range(200)}
    assert len(tokens) == 200


def test_split_token_accepts_secrets_containing_underscores() -> None:
    record, _token = new_key(tenant="acme", scopes=[Scope.CHECK])
    secret = "ab_cd-" + "x" * 40
    assert split_token(f"azk_{record.key_id}_{secret}") == (record.key_id, secret)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "azk",
        "azk__" + "A" * 43,
        "xyz_abcdefghijkm_" + "A" * 43,
        "azk_abcdefghijkm_short",
        "azk_ABCDEFGHIJKM_" + "A" * 43,  # ids are lowercase
        "azk_abcdefghijk_" + "A" * 43,  # 11 characters
        "azk_abcdefghijkm_" + "A" * 42 + "!",
    ],
)
def test_split_token_refuses_malformed_keys(token: str) -> None:
    assert split_token(token) is None


def test_scopes_parse_from_a_list_and_refuse_unknown_names() -> None:
    assert parse_scopes("check, WRITE,") == {Scope.CHECK, Scope.WRITE}
    with pytest.raises(InvalidArgument, match="`read` is not one of"):
        parse_scopes("check,read")
    with pytest.raises(InvalidArgument, match="at least one"):
        parse_scopes(" , ")


def test_tenant_binding() -> None:
    platform, _ = new_key(tenant=ALL_TENANTS, scopes=[Scope.ADMIN])
    acme, _ = new_key(tenant="acme", scopes=[Scope.CHECK])
    assert platform.platform
    assert platform.allows_tenant("acme")
    assert platform.allows_tenant("x")
    assert acme.allows_tenant("acme")
    assert not acme.allows_tenant("globex")
    assert not acme.allows_tenant("")
    with pytest.raises(InvalidArgument):
        new_key(tenant="", scopes=[Scope.CHECK])
    with pytest.raises(InvalidArgument):
        new_key(tenant="a/b", scopes=[Scope.CHECK])


def test_revocation_keeps_its_first_time() -> None:
    from datetime import UTC, datetime, timedelta

    key, _ = new_key(tenant="acme", scopes=[Scope.CHECK])
    first = datetime.now(UTC)
    revoked = key.revoke(first)
    assert revoked.revoked
    assert revoked.revoke(first + timedelta(hours=1)).revoked_at == first
