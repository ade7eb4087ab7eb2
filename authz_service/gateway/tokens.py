"""Bearer tokens: verify a JWT against the issuer's published keys (JWKS).

Verification is PyJWT's; this module decides which keys and claims are acceptable:
only asymmetric algorithms named in the configuration (RS256, ES256, EdDSA), the key's
own algorithm must match the token's, `exp`, `iss` and `aud` are required, and `nbf`/`iat`
are honoured with a configured leeway.

Keys come from a file or an HTTPS URL, loaded in a worker thread (nothing here blocks the
event loop), one load at a time, and at most once every `jwks_min_refresh_s` (so a stream
of made-up kids cannot turn the gateway into a load generator against the identity
provider). Until keys are first loaded, requests wait for the load. After that, keys older
than `jwks_cache_s` are refreshed in the background while requests go on verifying with the
keys loaded, so a slow identity provider costs no request its answer; only a token naming
an unknown `kid` (key rotation) waits for a refresh, within the call's deadline. A load
that fails or takes longer than the source's timeout is logged and the keys loaded stay.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from collections.abc import Callable, Mapping
from contextvars import Context
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt

from authz_service import deadline
from authz_service.errors import Unauthenticated, Unavailable, echo

__all__ = [
    "JwksKeys",
    "JwksSource",
    "JwtVerifier",
    "MissingCredentials",
    "bearer_token",
    "jwks_loader",
]

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 1 << 20


class MissingCredentials(Unauthenticated):
    """No credentials at all (as opposed to bad ones): HTTP 401 without an error code."""


def bearer_token(headers: Mapping[str, str], header: str) -> str:
    value = headers.get(header, "").strip()
    if not value:
        raise MissingCredentials("missing bearer token")
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated(f"`{echo(header)}` header is not of the form `Bearer <token>`")
    return token


@dataclass(frozen=True, slots=True)
class JwksSource:
    """Where the JWKS comes from: `read` returns the document (blocking: run it in a
    thread), `where` names it in warnings, and a load is given up after `timeout_s`."""

    where: str
    read: Callable[[], bytes]
    timeout_s: float


def jwks_loader(
    *, file: Path | None = None, url: str | None = None, timeout_s: float = 5.0
) -> JwksSource:
    if file is not None:
        return JwksSource(str(file), file.read_bytes, timeout_s)
    if url is None:
        raise ValueError("a JWKS file or URL is required")
    target, scheme = url, urlsplit(url).scheme

    def fetch() -> bytes:
        request = urllib.request.Request(target, headers={"accept": "application/json"})
        # The URL scheme is checked at config load (https, or http on loopback only).
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            if urlsplit(response.geturl()).scheme != scheme:
                raise ValueError(f"JWKS URL {target} redirected to another scheme")
            body: bytes = response.read(MAX_JWKS_BYTES + 1)
        if len(body) > MAX_JWKS_BYTES:
            raise ValueError(f"JWKS document at {target} exceeds {MAX_JWKS_BYTES} bytes")
        return body

    return JwksSource(url, fetch, timeout_s)


def _parse_jwks(body: bytes, algorithms: frozenset[str]) -> dict[str | None, jwt.PyJWK]:
    document = json.loads(body)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("JWKS document has no `keys` list")
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError as exc:
            log.warning("skipping JWKS key %r: %s", entry.get("kid"), exc)
            continue
        if key.algorithm_name in algorithms:
            keys[entry.get("kid")] = key
    if not keys:
        log.warning("the JWKS has no signing key for the accepted algorithms")
    return keys


class JwksKeys:
    """The issuer's signing keys by `kid`, loaded lazily and refreshed as described above."""

    def __init__(
        self,
        source: JwksSource,
        algorithms: frozenset[str],
        *,
        cache_s: float = 300.0,
        min_refresh_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._algorithms = algorithms
        self._cache_s = cache_s
        self._min_refresh_s = min_refresh_s
        self._clock = clock
        self._keys: dict[str | None, jwt.PyJWK] | None = None
        self._loaded_at = 0.0
        self._attempted_at: float | None = None
        self._refresh: asyncio.Task[None] | None = None
        self._reading: asyncio.Future[bytes] | None = None  # may outlive a timed-out refresh

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        keys = self._keys or {}
        if kid is None:
            # A token without `kid` is accepted only when the set leaves no choice.
            return next(iter(keys.values())) if len(keys) == 1 else None
        return keys.get(kid)

    async def get(self, kid: str | None) -> jwt.PyJWK:
        if self._keys is None:
            await _join(self._start_refresh())
            if self._keys is None:
                raise Unavailable("the issuer's signing keys could not be loaded")
        elif self._clock() - self._loaded_at >= self._cache_s:
            self._start_refresh()  # not awaited: the keys loaded serve until it ends
        key = self._lookup(kid)
        if key is None:  # perhaps the issuer rotated its keys
            await _join(self._start_refresh())
            key = self._lookup(kid)
        if key is None:
            raise Unauthenticated("token signing key is not among the issuer's keys")
        return key

    def _start_refresh(self) -> asyncio.Task[None] | None:
        """The refresh in flight; else a new one unless one was attempted within
        `min_refresh_s`; else None."""
        if self._refresh is not None and not self._refresh.done():
            return self._refresh
        last = self._attempted_at
        if last is not None and self._clock() - last < self._min_refresh_s:
            return None
        self._attempted_at = self._clock()
        if self._reading is not None and not self._reading.done():
            # A thread cannot be stopped: a second read would pile up behind the first.
            where = self._source.where
            log.warning("the JWKS from %s is still loading; not loading it again", where)
            return None
        self._reading = asyncio.get_running_loop().run_in_executor(None, self._source.read)
        # An empty context: the refresh serves every request, so it is not the call's that
        # started it (its warnings name no request id, no call's deadline applies to it).
        self._refresh = asyncio.create_task(self._load(self._reading), context=Context())
        return self._refresh

    async def _load(self, reading: asyncio.Future[bytes]) -> None:
        where, timeout_s = self._source.where, self._source.timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                # Shielded so that the timeout leaves `reading` pending while its thread
                # runs: a cancelled future would look finished and let a second read start.
                body = await asyncio.shield(reading)
            self._keys = _parse_jwks(body, self._algorithms)
            self._loaded_at = self._clock()
        except TimeoutError:
            log.warning("could not load the JWKS from %s within %g s", where, timeout_s)
        except Exception as exc:  # no caller to raise to; the keys loaded stay
            log.warning("could not load the JWKS from %s: %s", where, exc)


async def _join(refresh: asyncio.Task[None] | None) -> None:
    """Wait for a refresh, at most until the call's deadline. The refresh is shared:
    shielded, so that a caller giving up (or cancelled by gRPC) leaves it running."""
    if refresh is None:
        return
    try:
        async with asyncio.timeout(deadline.remaining()):
            await asyncio.shield(refresh)
    except TimeoutError:
        pass  # the caller decides with the keys loaded so far


_TOKEN_ERRORS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token has expired"),
    (jwt.ImmatureSignatureError, "token is not yet valid"),
    (jwt.InvalidIssuerError, "token issuer is not accepted"),
    (jwt.InvalidAudienceError, "token audience is not accepted"),
    (jwt.InvalidSignatureError, "token signature is invalid"),
    (jwt.InvalidAlgorithmError, "token algorithm is not accepted"),
    (jwt.DecodeError, "token is malformed"),
)


@dataclass(frozen=True, slots=True)
class JwtVerifier:
    keys: JwksKeys
    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...]
    leeway_s: float

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims if it is valid now; `Unauthenticated` saying why otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("token is malformed") from None
        if header.get("alg") not in self.algorithms:
            raise Unauthenticated("token algorithm is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("token is malformed")
        key = await self.keys.get(kid)
        if key.algorithm_name != header["alg"]:  # the key decides the algorithm, not the token
            raise Unauthenticated("token algorithm is not accepted")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(self.algorithms),
                audience=list(self.audiences),
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud"], "enforce_minimum_key_length": True},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token lacks the `{echo(exc.claim)}` claim") from None
        except jwt.PyJWTError as exc:
            for kind, message in _TOKEN_ERRORS:
                if isinstance(exc, kind):
                    raise Unauthenticated(message) from None
            raise Unauthenticated("token is invalid") from None
        return claims
