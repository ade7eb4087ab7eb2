"""JWT verification and the JWKS cache: what is accepted, what is refused, and why."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from authz_service.errors import Unauthenticated, Unavailable
from authz_service.gateway.tokens import (
    JwksKeys,
    JwtVerifier,
    MissingCredentials,
    bearer_token,
    jwks_loader,
)
from tests.gateway.issuer import AUDIENCE, ISSUER, Issuer, jwks, write_jwks

ALL = ("RS256", "ES256", "EdDSA")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verifier(keys: JwksKeys, algorithms: tuple[str, ...] = ALL) -> JwtVerifier:
    return JwtVerifier(keys, ISSUER, (AUDIENCE, "other-api"), algorithms, leeway_s=5)


def file_keys(path: Path, clock: Clock | None = None, **kw: Any) -> JwksKeys:
    return JwksKeys(jwks_loader(file=path), frozenset(ALL), clock=clock or Clock(), **kw)


@pytest.mark.parametrize("alg", ALL)
async def test_each_algorithm_verifies(tmp_path: Path, alg: str) -> None:
    issuer = Issuer(alg)
    keys = file_keys(write_jwks(tmp_path / "jwks.json", issuer))
    claims = await verifier(keys).verify(issuer.token(sub="alice"))
    assert claims["sub"] == "alice"


async def test_audience_may_be_any_configured_one(tmp_path: Path) -> None:
    issuer = Issuer()
    keys = file_keys(write_jwks(tmp_path / "jwks.json", issuer))
    await verifier(keys).verify(issuer.token(aud=["other-api", "x"]))


def _unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature)]
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda i: i.token(exp_in=-60), "token has expired"),
        (lambda i: i.token(nbf=2**40), "token is not yet valid"),
        (lambda i: i.token(iss="https://evil.example"), "token issuer is not accepted"),
        (lambda i: i.token(aud="someone-else"), "token audience is not accepted"),
        (lambda i: i.token(exp=None), "token lacks the `exp` claim"),
        (lambda i: i.token(aud=None), "token lacks the `aud` claim"),
        (lambda i: Issuer(kid=i.kid).token(), "token signature is invalid"),
        (lambda i: i.token(headers={"kid": "unknown"}), "not among the issuer's keys"),
        (lambda i: "not-a-jwt", "token is malformed"),
        (lambda i: i.token()[:-8] + "AAAAAAAA", "token signature is invalid"),
        (lambda i: _unsigned({"alg": "none", "kid": i.kid}, {"sub": "x"}), "algorithm"),
    ],
)
async def test_rejections(tmp_path: Path, make: Any, message: str) -> None:
    issuer = Issuer()
    keys = file_keys(write_jwks(tmp_path / "jwks.json", issuer), min_refresh_s=0)
    with pytest.raises(Unauthenticated, match=message):
        await verifier(keys).verify(make(issuer))


async def test_hmac_with_the_public_key_as_secret_is_refused(tmp_path: Path) -> None:
    """The classic algorithm-confusion attack: HS256 keyed with the RSA public key."""
    issuer = Issuer("RS256")
    keys = file_keys(write_jwks(tmp_path / "jwks.json", issuer))
    public = issuer.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    unsigned = _unsigned(
        {"alg": "HS256", "kid": issuer.kid},
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "root", "org_id": "acme", "exp": 2**40},
    )
    signing_input = unsigned.rsplit(".", 1)[0].encode()
    mac = hmac.new(public, signing_input, hashlib.sha256).digest()
    forged = signing_input.decode() + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    with pytest.raises(Unauthenticated, match="algorithm"):
        await verifier(keys).verify(forged)


async def test_key_algorithm_must_match_the_token(tmp_path: Path) -> None:
    rsa_key = Issuer("RS256", kid="k")
    keys = file_keys(write_jwks(tmp_path / "jwks.json", rsa_key))
    with pytest.raises(Unauthenticated, match="algorithm"):
        await verifier(keys).verify(Issuer("ES256", kid="k").token())


async def test_algorithm_outside_the_configured_list_is_refused(tmp_path: Path) -> None:
    issuer = Issuer("EdDSA")
    keys = JwksKeys(
        jwks_loader(file=write_jwks(tmp_path / "jwks.json", issuer)), frozenset({"RS256"})
    )
    with pytest.raises(Unauthenticated, match="algorithm"):
        await verifier(keys, ("RS256",)).verify(issuer.token())


async def test_token_without_kid_only_with_a_single_key(tmp_path: Path) -> None:
    one, two = Issuer(kid="a"), Issuer(kid="b")
    token = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": 2**40}, one.private, algorithm=one.alg
    )
    await verifier(file_keys(write_jwks(tmp_path / "one.json", one))).verify(token)
    both = file_keys(write_jwks(tmp_path / "both.json", one, two), min_refresh_s=0)
    with pytest.raises(Unauthenticated, match="not among"):
        await verifier(both).verify(token)


async def test_unknown_kid_reloads_the_file_at_most_every_min_refresh(tmp_path: Path) -> None:
    old, new = Issuer(kid="old"), Issuer(kid="new")
    path = write_jwks(tmp_path / "jwks.json", old)
    clock = Clock()
    keys = file_keys(path, clock, min_refresh_s=10)
    check = verifier(keys)
    await check.verify(old.token())
    write_jwks(path, old, new)  # the issuer rotates keys
    with pytest.raises(Unauthenticated, match="not among"):
        await check.verify(new.token())  # loaded at t=1000: too soon to reload
    clock.now += 10
    await check.verify(new.token())  # reloaded on the unknown kid


async def test_cache_expiry_reloads(tmp_path: Path) -> None:
    old, new = Issuer(kid="old"), Issuer(kid="new")
    path = write_jwks(tmp_path / "jwks.json", old)
    clock = Clock()
    keys = file_keys(path, clock, cache_s=60, min_refresh_s=10)
    await verifier(keys).verify(old.token())
    write_jwks(path, new)  # the old key is withdrawn
    clock.now += 61
    with pytest.raises(Unauthenticated, match="not among"):
        await verifier(keys).verify(old.token())


async def test_load_failure_keeps_old_keys_and_without_keys_is_unavailable(tmp_path: Path) -> None:
    issuer = Issuer()
    path = write_jwks(tmp_path / "jwks.json", issuer)
    clock = Clock()
    keys = file_keys(path, clock, cache_s=60, min_refresh_s=0)
    await verifier(keys).verify(issuer.token())
    path.write_text("{not json")
    clock.now += 61
    await verifier(keys).verify(issuer.token())  # stale keys beat no keys
    empty = file_keys(tmp_path / "missing.json")
    with pytest.raises(Unavailable):
        await verifier(empty).verify(issuer.token())


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"body": b"{}", "hits": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["hits"] += 1
            body: bytes = state["body"]
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_jwks_url_is_fetched_cached_and_refreshed_on_unknown_kid(
    jwks_server: tuple[str, dict[str, Any]],
) -> None:
    url, state = jwks_server
    old, new = Issuer(kid="old"), Issuer(kid="new")
    state["body"] = json.dumps(jwks(old)).encode()
    clock = Clock()
    keys = JwksKeys(jwks_loader(url=url), frozenset(ALL), clock=clock, min_refresh_s=5)
    check = verifier(keys)
    for _ in range(3):
        await check.verify(old.token())
    assert state["hits"] == 1
    state["body"] = json.dumps(jwks(old, new)).encode()
    clock.now += 5
    await check.verify(new.token())
    assert state["hits"] == 2
    for _ in range(3):  # made-up kids do not turn into requests to the issuer
        with pytest.raises(Unauthenticated):
            await check.verify(new.token(headers={"kid": "made-up"}))
    assert state["hits"] == 2


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("", MissingCredentials),
        ("Basic abc", Unauthenticated),
        ("Bearer", Unauthenticated),
        ("Bearer   ", Unauthenticated),
    ],
)
def test_bearer_token_errors(value: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        bearer_token({"authorization": value} if value else {}, "authorization")


def test_bearer_token_scheme_is_case_insensitive() -> None:
    assert bearer_token({"authorization": "bearer abc"}, "authorization") == "abc"
