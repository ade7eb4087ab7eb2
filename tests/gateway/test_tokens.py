"""JWT verification and the JWKS cache: what is accepted, what is refused, and why."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from authz_service import deadline
from authz_service.errors import Unauthenticated, Unavailable
from authz_service.gateway.tokens import (
    JwksKeys,
    JwksSource,
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


async def test_cache_expiry_reloads_in_the_background(tmp_path: Path) -> None:
    old, new = Issuer(kid="old"), Issuer(kid="new")
    path = write_jwks(tmp_path / "jwks.json", old)
    clock = Clock()
    check = verifier(file_keys(path, clock, cache_s=60, min_refresh_s=10))
    await check.verify(old.token())
    write_jwks(path, new)  # the old key is withdrawn
    clock.now += 61
    await check.verify(old.token())  # the keys loaded serve while the refresh runs
    await check.verify(new.token())  # an unknown kid waits for that refresh
    with pytest.raises(Unauthenticated, match="not among"):
        await check.verify(old.token())


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


class JwksServer:
    """A JWKS endpoint on loopback: serves `body` with `status`, and hangs while `answering`
    is clear (an identity provider that has become slow)."""

    def __init__(self) -> None:
        self.url = ""
        self.body = b"{}"
        self.status = 200
        self.hits = 0
        self.answering = threading.Event()
        self.answering.set()
        self._hit = threading.Condition()

    def record_hit(self) -> None:
        with self._hit:
            self.hits += 1
            self._hit.notify_all()

    async def reached(self, hits: int) -> None:
        """Wait until the server has been asked `hits` times in all."""

        def wait() -> bool:
            with self._hit:
                return self._hit.wait_for(lambda: self.hits >= hits, timeout=5)

        assert await asyncio.to_thread(wait), f"{self.hits} requests, expected {hits}"


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    idp = JwksServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            idp.record_hit()
            idp.answering.wait()
            body = idp.body
            try:
                self.send_response(idp.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except ConnectionError:
                pass  # the client stopped waiting for a hanging answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    idp.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    try:
        yield idp
    finally:
        idp.answering.set()  # a request still hanging ends
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def url_keys(idp: JwksServer, clock: Clock, timeout_s: float = 5.0) -> JwksKeys:
    load = jwks_loader(url=idp.url, timeout_s=timeout_s)
    return JwksKeys(load, frozenset(ALL), clock=clock, cache_s=60, min_refresh_s=10)


async def test_jwks_url_is_fetched_cached_and_refreshed_on_unknown_kid(
    jwks_server: JwksServer,
) -> None:
    idp = jwks_server
    old, new = Issuer(kid="old"), Issuer(kid="new")
    idp.body = json.dumps(jwks(old)).encode()
    clock = Clock()
    keys = JwksKeys(jwks_loader(url=idp.url), frozenset(ALL), clock=clock, min_refresh_s=5)
    check = verifier(keys)
    for _ in range(3):
        await check.verify(old.token())
    assert idp.hits == 1
    idp.body = json.dumps(jwks(old, new)).encode()
    clock.now += 5
    await check.verify(new.token())
    assert idp.hits == 2
    for _ in range(3):  # made-up kids do not turn into requests to the issuer
        with pytest.raises(Unauthenticated):
            await check.verify(new.token(headers={"kid": "made-up"}))
    assert idp.hits == 2


async def test_a_due_refresh_does_not_hold_up_requests_while_the_issuer_hangs(
    jwks_server: JwksServer,
) -> None:
    idp = jwks_server
    old, new = Issuer(kid="old"), Issuer(kid="new")
    idp.body = json.dumps(jwks(old)).encode()
    clock = Clock()
    check = verifier(url_keys(idp, clock))
    await check.verify(old.token())
    idp.answering.clear()
    clock.now += 60  # the keys are due for a refresh
    for _ in range(5):
        async with asyncio.timeout(0.5):  # Envoy's timeout: the loaded keys answer at once
            await check.verify(old.token())
    await idp.reached(2)
    idp.body = json.dumps(jwks(old, new)).encode()  # the issuer rotated meanwhile
    idp.answering.set()
    await check.verify(new.token())  # an unknown kid waits for the refresh in flight
    assert idp.hits == 2  # one refresh for all those requests


async def test_a_waiting_request_that_gives_up_leaves_the_refresh_running(
    jwks_server: JwksServer,
) -> None:
    idp = jwks_server
    old, new = Issuer(kid="old"), Issuer(kid="new")
    idp.body = json.dumps(jwks(old)).encode()
    clock = Clock()
    check = verifier(url_keys(idp, clock))
    await check.verify(old.token())
    idp.answering.clear()
    idp.body = json.dumps(jwks(old, new)).encode()
    clock.now += 10  # a reload is allowed again
    async with asyncio.timeout(2):
        with deadline.within(time.monotonic() + 0.1), pytest.raises(Unauthenticated):
            await check.verify(new.token())  # waits for the reload only until its deadline
    await idp.reached(2)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):  # cancelled, as gRPC does when Envoy gives up
            await check.verify(new.token())
    idp.answering.set()
    await check.verify(new.token())  # the reload both of them waited for has finished
    assert idp.hits == 2


async def test_a_failed_refresh_is_logged_and_retried_after_min_refresh(
    jwks_server: JwksServer, caplog: pytest.LogCaptureFixture
) -> None:
    idp = jwks_server
    issuer = Issuer()
    idp.body = json.dumps(jwks(issuer)).encode()
    clock = Clock()
    check = verifier(url_keys(idp, clock))
    await check.verify(issuer.token())
    idp.status = 500
    clock.now += 60
    await check.verify(issuer.token())  # the loaded keys serve while the refresh fails
    with pytest.raises(Unauthenticated):
        await check.verify(issuer.token(headers={"kid": "new"}))  # waits for that refresh
    assert f"could not load the JWKS from {idp.url}: HTTP Error 500" in caplog.text
    clock.now += 9
    await check.verify(issuer.token())
    assert idp.hits == 2  # too soon to retry
    clock.now += 1
    await check.verify(issuer.token())
    await idp.reached(3)


async def test_a_refresh_that_hangs_times_out_with_a_warning(
    jwks_server: JwksServer, caplog: pytest.LogCaptureFixture
) -> None:
    idp = jwks_server
    issuer = Issuer()
    idp.body = json.dumps(jwks(issuer)).encode()
    clock = Clock()
    check = verifier(url_keys(idp, clock, timeout_s=0.2))
    await check.verify(issuer.token())
    idp.answering.clear()
    clock.now += 60
    await check.verify(issuer.token())
    async with asyncio.timeout(2):
        with pytest.raises(Unauthenticated):
            await check.verify(issuer.token(headers={"kid": "new"}))  # waits for the timeout
    assert f"could not load the JWKS from {idp.url}" in caplog.text
    await check.verify(issuer.token())  # the keys loaded still work


async def test_a_read_given_up_on_is_not_doubled_while_its_thread_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    issuer = Issuer()
    body = json.dumps(jwks(issuer)).encode()
    reads, started, release = 0, threading.Event(), threading.Event()

    def read() -> bytes:
        nonlocal reads
        reads += 1
        if reads > 1:  # the first read loads the keys, later ones hang
            started.set()
            release.wait()
        return body

    clock = Clock()
    source = JwksSource("jwks.test", read, timeout_s=0.1)
    check = verifier(JwksKeys(source, frozenset(ALL), clock=clock, cache_s=60, min_refresh_s=10))
    await check.verify(issuer.token())
    clock.now += 60
    try:
        await check.verify(issuer.token())
        assert await asyncio.to_thread(started.wait, 5)
        with pytest.raises(Unauthenticated):
            await check.verify(issuer.token(headers={"kid": "new"}))  # waits for the timeout
        assert "could not load the JWKS from jwks.test within 0.1 s" in caplog.text
        clock.now += 10
        await check.verify(issuer.token())  # due again, but the hanging read still runs
        assert reads == 2
        assert "the JWKS from jwks.test is still loading" in caplog.text
    finally:
        release.set()


async def test_without_keys_a_request_waits_for_the_load_within_its_timeout(
    jwks_server: JwksServer,
) -> None:
    idp = jwks_server
    idp.answering.clear()
    check = verifier(url_keys(idp, Clock(), timeout_s=0.2))
    async with asyncio.timeout(2):
        with pytest.raises(Unavailable):
            await check.verify(Issuer().token())


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
