"""Who is using the console: API-key sessions, and the CSRF token of each.

A user signs in with an API key on the login page. The key is verified by the server's
own `Authenticator` (same cache, same failure limits, same revocation rules as a gRPC
call), and kept only in this process's memory, in a session named by a random id: the
browser holds that id in an HttpOnly, SameSite=Strict cookie (Secure when the console
serves TLS), never the key itself. Every console action is then a gRPC call carrying the
key, so the server authenticates and authorizes it exactly as any other call; the scopes
seen here only decide which pages and buttons are shown.

The key is verified again on every request (through the authenticator's short cache), so
a revoked or expired key ends its session within `AUTHZ_AUTH_CACHE_TTL_S`. That re-check
is the holder's, not a guess: no failure backoff holds it off, so no one's failures,
the holder's own included, keep a revoked key's session alive or end a valid one. A key
that cannot be verified (the key store unreachable once its cache entry expired) ends
the session too, as it ends an open stream: nothing runs on a key not verified within
the TTL. Sessions end after `idle_s` without a request, and at the latest after
`max_age_s`.

Signing in is never a way to sign anyone else out: a key keeps at most `max_per_key`
sessions (a new sign-in past that ends the key's own oldest), at most `max_per_address`
are signed in from one address, and at most `max_sessions` are kept in all; past either
of the last two, new sign-ins are refused (TooManySessions, a 429 page) until sessions
end, rather than other users' sessions evicted. A valid key may sign in as often as it
likes, and the sign-in form's token is double submit, so a flood costs little.

With authentication off (`authz serve --no-auth`, local development only) there is no
login: every browser gets a session of an anonymous viewer holding every scope, as every
gRPC caller is trusted then too.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from authz_service.api.auth import Authenticator
from authz_service.api.limits import peer_address
from authz_service.credentials import ALL_TENANTS, Scope
from authz_service.errors import AuthzError, LimitExceeded

__all__ = ["COOKIE", "LOGIN_COOKIE", "Session", "Sessions", "TooManySessions", "Viewer"]

COOKIE = "authz_console"
LOGIN_COOKIE = "authz_console_login"  # the sign-in form's CSRF token (double submit)
_ALL_SCOPES = frozenset(Scope)


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in caller, as the console shows them."""

    token: str | None  # the API key sent with every call; None when authentication is off
    key_id: str
    tenant: str  # the key's tenant, or ALL_TENANTS for platform keys
    scopes: frozenset[Scope]

    def can(self, scope: Scope | None) -> bool:
        return scope is None or scope in self.scopes

    @property
    def platform(self) -> bool:
        return self.tenant == ALL_TENANTS

    @property
    def label(self) -> str:
        if self.token is None:
            return "authentication off"
        where = "all tenants" if self.platform else f"tenant {self.tenant}"
        return f"key {self.key_id} ({where}; {', '.join(sorted(self.scopes))})"

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """gRPC metadata for a call made on this viewer's behalf."""
        return () if self.token is None else (("authorization", f"Bearer {self.token}"),)


ANONYMOUS = Viewer(token=None, key_id="", tenant=ALL_TENANTS, scopes=_ALL_SCOPES)


@dataclass(slots=True)
class Session:
    viewer: Viewer
    csrf: str
    started: float
    seen: float
    address: str  # signed in from (api/limits.py's spelling, no port): the per-address cap

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented, self.csrf)


class TooManySessions(LimitExceeded):
    """A sign-in refused because its address, or the console, holds as many sessions as
    it may."""


@dataclass
class Sessions:
    """Sessions of one console process, in memory (a restart signs everyone out)."""

    authenticator: Authenticator | None
    idle_s: float = 30 * 60
    max_age_s: float = 12 * 3600
    max_sessions: int = 10_000
    max_per_key: int = 50
    max_per_address: int = 500
    clock: Callable[[], float] = time.monotonic
    _by_id: dict[str, Session] = field(default_factory=dict)  # oldest first
    # Key id -> the ids of its sessions, oldest first (a dict as an ordered set).
    _by_key: dict[str, dict[str, None]] = field(default_factory=dict)
    _per_address: Counter[str] = field(default_factory=Counter)

    @property
    def auth(self) -> bool:
        return self.authenticator is not None

    async def login(self, api_key: str, *, peer: str | None) -> tuple[str, Session]:
        """A new session for `api_key`; Unauthenticated (or LimitExceeded while the peer
        is backing off after failures) if the server would refuse the key,
        TooManySessions if the caps leave no room."""
        if self.authenticator is None:
            return self.anonymous(peer=peer)
        key = await self.authenticator.authenticate(f"Bearer {api_key.strip()}", peer=peer)
        viewer = Viewer(api_key.strip(), key.key_id, key.tenant, frozenset(key.scopes))
        return self._new(viewer, peer_address(peer) or "")

    def anonymous(self, *, peer: str | None) -> tuple[str, Session]:
        """A session of the anonymous viewer (authentication off). Every session is one
        then, all of one "key": past `max_per_key` a new one ends the oldest, so the
        caps that refuse are never reached."""
        return self._new(ANONYMOUS, peer_address(peer) or "")

    async def current(self, session_id: str | None) -> Session | None:
        """The live session named by the cookie, its key verified again; None if there is
        none, it timed out, or its key could not be verified."""
        session = self._by_id.get(session_id or "")
        if session is None:
            return None
        now = self.clock()
        if now - session.seen > self.idle_s or now - session.started > self.max_age_s:
            self.logout(session_id)
            return None
        viewer = session.viewer
        if self.authenticator is not None and viewer.token is not None:
            try:
                key = await self.authenticator.authenticate(f"Bearer {viewer.token}", recheck=True)
            except AuthzError:  # revoked, expired, or not verifiable now (module docstring)
                self.logout(session_id)
                return None
            # Scopes may have changed by rotation elsewhere; show what the key holds now.
            session.viewer = replace(viewer, scopes=frozenset(key.scopes))
        session.seen = now
        return session

    def logout(self, session_id: str | None) -> None:
        session = self._by_id.pop(session_id or "", None)
        if session is None:
            return
        own = self._by_key[session.viewer.key_id]
        del own[session_id or ""]
        if not own:
            del self._by_key[session.viewer.key_id]
        self._per_address[session.address] -= 1
        if self._per_address[session.address] == 0:
            del self._per_address[session.address]

    def _new(self, viewer: Viewer, address: str) -> tuple[str, Session]:
        now = self.clock()
        refused = self._refusal(viewer.key_id, address)
        if refused is not None:
            self._expire(now)  # only now: it walks every session
            refused = self._refusal(viewer.key_id, address)
        if refused is not None:
            raise TooManySessions(refused)
        own = self._by_key.get(viewer.key_id, {})
        if len(own) >= self.max_per_key:
            self.logout(next(iter(own)))  # the key's own oldest: its holder's to lose
        session_id = secrets.token_urlsafe(32)
        session = Session(viewer, secrets.token_urlsafe(32), now, now, address)
        self._by_id[session_id] = session
        self._by_key.setdefault(viewer.key_id, {})[session_id] = None
        self._per_address[address] += 1
        return session_id, session

    def _refusal(self, key_id: str, address: str) -> str | None:
        """Why a new session of `key_id` from `address` finds no room; None if it does.
        A key at its own cap makes room by ending its own oldest session."""
        own = self._by_key.get(key_id, {})
        making_room = self._by_id[next(iter(own))] if len(own) >= self.max_per_key else None
        from_here = self._per_address[address]
        if making_room is not None and making_room.address == address:
            from_here -= 1
        if from_here >= self.max_per_address:
            return (
                f"this address holds {self.max_per_address} console sessions, the most it "
                "may; sign out of one, or try again once one has ended"
            )
        if len(self._by_id) - (making_room is not None) >= self.max_sessions:
            return (
                f"the console holds {self.max_sessions} sessions, the most it may; "
                "try again once one has ended"
            )
        return None

    def _expire(self, now: float) -> None:
        for sid in [
            sid
            for sid, s in self._by_id.items()
            if now - s.seen > self.idle_s or now - s.started > self.max_age_s
        ]:
            self.logout(sid)
