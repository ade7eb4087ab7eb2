"""Bearer tokens: verify a JWT against the issuer's published keys (JWKS).

Verification is PyJWT's; this module decides which keys and claims are acceptable:
only asymmetric algorithms named in the configuration (RS256, ES256, EdDSA), the key's
own algorithm must match the token's, `exp`, `iss` and `aud` are required, and `nbf`/`iat`
are honoured with a configured leeway.

Keys come from a file or an HTTPS URL. They are cached for `jwks_cache_s`; a token naming
an unknown `kid` triggers one reload (at most every `jwks_min_refresh_s`, so a stream of
made-up kids cannot turn the gateway into a load generator against the identity
provider). Loading runs in a worker thread: nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt

from authz_service.errors import Unauthenticated, Unavailable, echo

__all__ = ["JwksKeys", "JwtVerifier", "MissingCredentials", "bearer_token", "jwks_loader"]

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


def jwks_loader(
    *, file: Path | None = None, url: str | None = None, timeout_s: float = 5.0
) -> Callable[[], bytes]:
    """A blocking function returning the JWKS document (run it in a thread)."""
    if file is not None:
        path = file
        return path.read_bytes
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

    return fetch


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
        load: Callable[[], bytes],
        algorithms: frozenset[str],
        *,
        cache_s: float = 300.0,
        min_refresh_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._algorithms = algorithms
        self._cache_s = cache_s
        self._min_refresh_s = min_refresh_s
        self._clock = clock
        self._keys: dict[str | None, jwt.PyJWK] | None = None
        self._loaded_at = 0.0
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        keys = self._keys or {}
        if kid is None:
            # A token without `kid` is accepted only when the set leaves no choice.
            return next(iter(keys.values())) if len(keys) == 1 else None
        return keys.get(kid)

    def _may_load(self) -> bool:
        last = self._attempted_at
        return last is None or self._clock() - last >= self._min_refresh_s

    async def get(self, kid: str | None) -> jwt.PyJWK:
        expired = self._clock() - self._loaded_at >= self._cache_s
        if self._keys is None or expired:
            await self._reload()
        key = self._lookup(kid)
        if key is None:
            await self._reload()
            key = self._lookup(kid)
        if key is None:
            raise Unauthenticated("token signing key is not among the issuer's keys")
        return key

    async def _reload(self) -> None:
        """Load the keys unless a load was attempted within `min_refresh_s`; requests that
        arrive together wait for one load (the lock) instead of each starting their own."""
        async with self._lock:
            if self._may_load():
                self._attempted_at = self._clock()
                try:
                    body = await asyncio.to_thread(self._load)
                    self._keys = _parse_jwks(body, self._algorithms)
                    self._loaded_at = self._clock()
                except (OSError, ValueError) as exc:
                    log.warning("could not load the JWKS: %s", exc)  # keep the keys we have
            if self._keys is None:
                raise Unavailable("the issuer's signing keys could not be loaded")


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
