"""Who may call: API-key authentication, method scopes and tenant binding (docs/auth.md).

Every call except the health and reflection services must carry the metadata
`authorization: Bearer azk_<key id>_<secret>`. The interceptor's handler checks it in
two steps, before the servicer runs (unary and server-streaming alike):

1. Before the request body is parsed (the handler receives it as bytes): the caller's
   peer (for the web console's calls, the browser's address they relay: api/relay.py)
   and key id must not be backing off after failed attempts (api/limits.py,
   RESOURCE_EXHAUSTED), and the key must be well formed, known, not revoked, and its
   secret must match (UNAUTHENTICATED). An unauthenticated caller costs no parsing.
2. After parsing: the key must hold the scope the method needs (`METHOD_SCOPES`, the one
   table) and be bound to the request's tenant. Otherwise PERMISSION_DENIED. A request
   without a `tenant` field is not tenant data and needs a platform (`*`) key, except
   for methods open to any key (ReadSchema).

Verified keys are cached for `ttl_s` (default 5 s) so that the hot path does not touch
the database; a revoked key therefore stops working at most `ttl_s` after revocation.
A server stream that stays open is held to the same bound: its key is verified again,
against the store, every `ttl_s` (every second with `ttl_s=0`) while it runs, and a
revoked key ends it with UNAUTHENTICATED (api/recheck.py).
The key of the current call is kept in a context variable: `current_credential_id()`
puts its id into every decision-log record.

With `certificates=True` (a client CA is configured, api/tls.py), a call without
`authorization` metadata is admitted on its verified client certificate instead, when
the certificate names a tenant and scopes (api/peer_certs.py, or a mapping file,
api/cert_map.py); the same scope and tenant
checks then apply to it as to a key. A key, when present, is what is checked.

A method in `answers` (Envoy's ext_authz Check, api/envoy.py) is never refused with an
error status: its caller may treat an error as "let the request through"
(`failure_mode_allow: true`), so every refusal above is answered with the response its
`answers` entry makes (a denial), after the same logging and counting.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal, NoReturn, Protocol, TypeAlias

import grpc

from authz_service.api.decoding import Undecodable, decode, never_raises
from authz_service.api.limits import FailureLimiter
from authz_service.api.peer_certs import certificate_identity
from authz_service.api.recheck import rechecked, run_rechecked
from authz_service.api.relay import relayed_peer
from authz_service.api.status import to_status
from authz_service.credentials import ApiKey, Scope, hash_secret, split_token
from authz_service.errors import AuthzError, PermissionDenied, Unauthenticated, echo
from authz_service.store.protocol import KeyStore

__all__ = [
    "ANY_KEY",
    "EXEMPT_SERVICES",
    "METHOD_SCOPES",
    "AuthInterceptor",
    "Authenticator",
    "current_credential_id",
    "current_key",
    "refusal",
]

log = logging.getLogger(__name__)

ANY_KEY: Final = "any"
"""In METHOD_SCOPES: any valid key may call, whatever its scopes and tenant."""

Requirement: TypeAlias = Scope | Literal["any"]


def _table(services: Mapping[str, Mapping[str, Requirement]]) -> dict[str, Requirement]:
    return {
        f"/{service}/{method}": need
        for service, methods in services.items()
        for method, need in methods.items()
    }


# The one table of what each method needs. A method missing here is refused to every
# key (deny by default); tests/api/test_auth.py fails when a registered method is missing.
METHOD_SCOPES: Final[Mapping[str, Requirement]] = _table(
    {
        "authz.v1.PermissionsService": {
            "Check": Scope.CHECK,
            "CheckBulk": Scope.CHECK,
            "ListPermissions": Scope.CHECK,
            "LookupResources": Scope.CHECK,
            "LookupSubjects": Scope.CHECK,
            "Explain": Scope.CHECK,
        },
        # Reading raw tuples or following their changes is data administration, not a
        # decision: it needs `write`, like changing them.
        "authz.v1.RelationshipsService": {
            "WriteRelationships": Scope.WRITE,
            "DeleteRelationships": Scope.WRITE,
            "ReadRelationships": Scope.WRITE,
            "Watch": Scope.WRITE,
        },
        # The schema is shared by all tenants: writing it is the platform's business;
        # reading it is harmless and every client may need it.
        "authz.v1.SchemaService": {
            "WriteSchema": Scope.ADMIN,
            "ReadSchema": ANY_KEY,
        },
        # Tenant administration (roles, bindings, subject lifecycle); the reads reveal
        # who holds what, as ReadRelationships does, so they need `write` too.
        "authz.v1.TenancyService": {
            "CreateRole": Scope.WRITE,
            "UpdateRole": Scope.WRITE,
            "DeleteRole": Scope.WRITE,
            "ListRoles": Scope.WRITE,
            "CreateBinding": Scope.WRITE,
            "DeleteBinding": Scope.WRITE,
            "ListBindings": Scope.WRITE,
            "GrantReach": Scope.WRITE,
            "GetSubjectStatus": Scope.WRITE,
            "SuspendSubject": Scope.WRITE,
            "ReactivateSubject": Scope.WRITE,
            "DeprovisionSubject": Scope.WRITE,
            "GetScimSync": Scope.WRITE,
            "RepairScimDrift": Scope.WRITE,
        },
        # The tenant registry is the platform's: its requests have no `tenant` field, so
        # only platform (`*`) keys with `admin` may call it.
        "authz.v1.TenantService": {
            "CreateTenant": Scope.ADMIN,
            "GetTenant": Scope.ADMIN,
            "ListTenants": Scope.ADMIN,
            "SuspendTenant": Scope.ADMIN,
            "ReactivateTenant": Scope.ADMIN,
            "DeleteTenant": Scope.ADMIN,
            "ExportTenant": Scope.ADMIN,
        },
        # Keys of the request's tenant; a key never grants scopes its creator lacks.
        "authz.v1.KeysService": {
            "CreateKey": Scope.ADMIN,
            "ListKeys": Scope.ADMIN,
            "RevokeKey": Scope.ADMIN,
            "RotateKey": Scope.ADMIN,
        },
        # A tenant's service accounts: an admin of the request's tenant (or the platform).
        "authz.v1.ServiceAccountsService": {
            "CreateServiceAccount": Scope.ADMIN,
            "GetServiceAccount": Scope.ADMIN,
            "ListServiceAccounts": Scope.ADMIN,
            "DisableServiceAccount": Scope.ADMIN,
            "EnableServiceAccount": Scope.ADMIN,
            "DeleteServiceAccount": Scope.ADMIN,
            "CreateServiceAccountKey": Scope.ADMIN,
            "ListServiceAccountKeys": Scope.ADMIN,
            "ReportServiceAccounts": Scope.ADMIN,
        },
        "authz.v1.AuditService": {
            "QueryDecisions": Scope.AUDIT,
            "VerifyLog": Scope.AUDIT,
            "ExplainDecision": Scope.AUDIT,
            "ReplayDecisions": Scope.AUDIT,
        },
        # Envoy's CheckRequest has no tenant field, so only a platform key can call it.
        "envoy.service.auth.v3.Authorization": {"Check": Scope.CHECK},
    }
)

EXEMPT_SERVICES: Final = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)
"""Callable without a key: load balancers probe health, and reflection only describes
the public API."""

# (the authorization metadata value it was verified from, the key) for the current call.
_verified: contextvars.ContextVar[tuple[str, ApiKey] | None] = contextvars.ContextVar(
    "authz_verified_key", default=None
)


def current_key() -> ApiKey | None:
    """The key the current call was authenticated with (None when auth is off)."""
    verified = _verified.get()
    return None if verified is None else verified[1]


def current_credential_id() -> str | None:
    verified = _verified.get()
    return None if verified is None else verified[1].key_id


class Authenticator:
    """Verifies `Bearer` API keys against a KeyStore, caching records for `ttl_s`.

    Records are cached whether live or revoked (the secret is compared on every call, so
    a cached record admits only its holder); unknown ids are not cached, so a key is
    usable as soon as it is created. `ttl_s=0` reads the store on every call.
    """

    # How often an open stream re-verifies its key when `ttl_s` is 0 (no cache).
    UNCACHED_RECHECK_S: Final = 1.0

    def __init__(
        self,
        keys: KeyStore,
        *,
        ttl_s: float = 5.0,
        max_entries: int = 10_000,
        negative_ttl_s: float = 2.0,
        limiter: FailureLimiter | None = None,
        usage_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._ttl = ttl_s
        self._max = max_entries
        self._negative_ttl = negative_ttl_s
        self._limiter = limiter or FailureLimiter(clock=clock)
        self._clock = clock
        # Oldest insertion first; OrderedDicts, because a plain dict walks past the holes
        # its evicted first entries leave (cache/lru.py).
        self._cache: OrderedDict[str, tuple[float, ApiKey]] = OrderedDict()
        # Key ids the store did not know, until when: a flood of made-up ids costs no
        # database round trip. Short-lived, and cleared by `created` on this replica.
        self._unknown: OrderedDict[str, float] = OrderedDict()
        # Last-use times not yet written: one batched write per `usage_interval_s`, not
        # one per call.
        self._usage_interval = usage_interval_s
        self._used: dict[str, datetime] = {}
        self._flushed = clock()
        self._flushing: asyncio.Task[None] | None = None

    def changed(self, key_id: str) -> None:
        """A key was created, revoked or rotated through this replica: forget what the
        caches say about it, so the change applies here at once."""
        self._unknown.pop(key_id, None)
        self._cache.pop(key_id, None)

    @property
    def recheck_s(self) -> float:
        """Seconds between two verifications of an open stream's key: a revocation ends
        a stream no later than it stops new calls."""
        return self._ttl if self._ttl > 0 else self.UNCACHED_RECHECK_S

    async def authenticate(
        self,
        authorization: str | None,
        *,
        fresh: bool = False,
        peer: str | None = None,
        recheck: bool = False,
    ) -> ApiKey:
        """The live key `authorization` (`Bearer <key>`) presents; Unauthenticated if
        none does, Unavailable if the store cannot be reached, LimitExceeded while the
        peer or key id is backing off after failures. `fresh` reads the store even when
        the key is cached (and refreshes the cache). `recheck`: a key verified before is
        verified again for its holder (an open stream's, a console session's), which is
        no guess: never held off, never counted as a failure."""
        # A call that presents no key is not a guess: refused, but neither counted nor held
        # off, so that one client without its key (a probe, a service not yet configured)
        # does not block every caller behind the same address.
        if not authorization:
            raise Unauthenticated("missing `authorization: Bearer <api key>` metadata")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthenticated("authorization metadata must be `Bearer <api key>`")
        key_id = None
        try:
            parts = split_token(token.strip())
            if parts is None:
                self._limiter.check(peer, None)
                raise Unauthenticated("malformed api key")
            key_id, secret = parts
            if not recheck:  # its holder's, never held off by guessers or by its own past
                self._limiter.check(peer, key_id)
            digest = hash_secret(secret)  # once per call, compared as often as needed
            key = await self._lookup(key_id, fresh)
            if key is not None and not fresh and not key.matches_digest(digest):
                # Perhaps rotated on another replica since it was cached: ask the store
                # once more (the failure limits bound what this costs a guesser).
                key = await self._lookup(key_id, True)
            # One message for an unknown id and a wrong secret; the rest only to the holder.
            if key is None or not key.matches_digest(digest):
                raise Unauthenticated("invalid api key")
            now = self._now()
            refused = key.refusal(digest, now)
            if refused is not None:
                raise Unauthenticated(refused)
            self._note_use(key_id, now)
            return key
        except Unauthenticated:
            if not recheck:  # a re-check failing is the holder's key ending, not a guess
                self._limiter.failed(peer, key_id)
            raise

    def _now(self) -> datetime:
        return datetime.now(UTC)

    def _note_use(self, key_id: str, at: datetime) -> None:
        self._used[key_id] = at
        now = self._clock()
        if now - self._flushed < self._usage_interval:
            return
        if self._flushing is None or self._flushing.done():
            self._flushed = now
            self._flushing = asyncio.get_running_loop().create_task(self.flush_usage())

    async def flush_usage(self) -> None:
        """Write the last-use times gathered since the last flush (one store call). A
        failure loses only these times: they are informational, never a decision."""
        used, self._used = self._used, {}
        try:
            await self._keys.touch(used)
        except Exception as exc:  # the store is down: the next flush has newer times
            log.warning("could not record the last use of %d api keys: %s", len(used), exc)

    async def _lookup(self, key_id: str, fresh: bool) -> ApiKey | None:
        now = self._clock()
        hit = self._cache.get(key_id)
        if hit is not None and hit[0] > now and not fresh:
            return hit[1]
        unknown_until = self._unknown.get(key_id)
        if unknown_until is not None and unknown_until > now and not fresh:
            return None
        key = await self._keys.get(key_id)
        if key is None:
            self._cache.pop(key_id, None)
            if self._negative_ttl > 0:
                if key_id not in self._unknown and len(self._unknown) >= self._max:
                    self._unknown.popitem(last=False)  # the oldest insertion
                self._unknown[key_id] = now + self._negative_ttl
        else:
            self._unknown.pop(key_id, None)
            if self._ttl > 0:
                if key_id not in self._cache and len(self._cache) >= self._max:
                    self._evict(now)
                self._cache[key_id] = (now + self._ttl, key)
        return key

    def _evict(self, now: float) -> None:
        for stale in [k for k, (until, _) in self._cache.items() if until <= now]:
            del self._cache[stale]
        while len(self._cache) >= self._max:
            self._cache.popitem(last=False)  # the oldest insertion


Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

_MAKE = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _authorization(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    values = [v for k, v in metadata or () if k == "authorization"]
    if len(values) > 1:
        raise Unauthenticated("more than one `authorization` metadata entry")
    value = values[0] if values else None
    return value if isinstance(value, str) else None


@never_raises
def _ignore(_data: bytes) -> None:
    """Request deserializer of a refused call: the body of an unauthenticated caller is
    never parsed."""


def _refusing(handler: Handler, exc: BaseException) -> Handler:
    status = to_status(exc)

    async def refuse(_request: Any, context: Context) -> None:
        # grpc-stubs predates abort_with_status on the aio context; it exists at runtime.
        await context.abort_with_status(status)  # type: ignore[attr-defined]

    make = _MAKE[(handler.request_streaming, handler.response_streaming)]
    return make(
        refuse, request_deserializer=_ignore, response_serializer=handler.response_serializer
    )


class _Refused(Exception):
    """A call to a method in `answers` was refused: its guard answers, never aborts."""


async def _refuse(exc: BaseException, context: Context, answered: bool) -> NoReturn:
    """Abort the call with `exc`'s status; raise `_Refused` instead when the call is
    answered in its response. The status is made either way: it logs an unexpected
    exception."""
    status = to_status(exc)
    if answered:
        raise _Refused from exc
    await context.abort_with_status(status)  # type: ignore[attr-defined]
    raise exc  # not reached: abort raises


def refusal(method: str, need: Requirement | None, key: ApiKey, request: Any) -> str | None:
    """Why `key` may not make this call (None if it may): scope, then tenant binding."""
    name = method.rsplit("/", 1)[-1]
    if need is None:
        return f"`{name}` is not open to api keys"
    if need != ANY_KEY and need not in key.scopes:
        return f"api key `{key.key_id}` lacks the `{need}` scope that `{name}` needs"
    field = type(request).DESCRIPTOR.fields_by_name.get("tenant")
    if field is None:
        if need != ANY_KEY and not key.platform:
            return f"`{name}` is not tenant-scoped and needs a platform (`*`) key"
        return None
    tenant: str = request.tenant
    if not key.allows_tenant(tenant):
        shown = echo(tenant) if tenant else "(empty)"
        return f"api key `{key.key_id}` is not valid for tenant `{shown}`"
    return None


@never_raises
def _raw(data: bytes) -> bytes:
    """Request deserializer of a protected call: the body stays bytes until the caller
    is authenticated, so an unauthenticated caller costs no parsing."""
    return data


class TenantCheck(Protocol):
    """What runs after the key checks on the parsed request (api/tenant_gate.py's
    TenantGate): `pending` says synchronously what is left to ask, `admit` asks it."""

    def pending(self, request: Any) -> tuple[str, bool] | None: ...

    async def admit(self, named: tuple[str, bool], context: Context) -> None: ...


# Not subscripted: grpc.aio.ServerInterceptor is generic in the stubs only.
class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Authenticates every call and enforces METHOD_SCOPES and tenant binding.

    Put it after the telemetry interceptor, so that refused calls are counted too.
    Authentication runs in the handler, not in `intercept_service`, because only the
    handler's context knows the peer the abuse limits count.
    """

    def __init__(
        self,
        authenticator: Authenticator,
        scopes: Mapping[str, Requirement] = METHOD_SCOPES,
        *,
        certificates: bool = False,
        certificate_map: Mapping[str, ApiKey] | None = None,
        gate: TenantCheck | None = None,
        answers: Mapping[str, Callable[[], Any]] | None = None,
        relay: str | None = None,
    ) -> None:
        """`gate`, when given, runs after the scope and tenant-binding checks, on the
        request parsed here: one interceptor layer per call instead of two.

        `answers`: unary methods whose refusals are answered with the response the
        function makes instead of an error status (their requests have no `tenant`
        field, so the gate never refuses them).

        `relay`: the secret this process's console proves its calls with; a call that
        proves it is counted against the browser's address it relays (api/relay.py)."""
        self._auth = authenticator
        self._relay = relay
        self._gate = gate
        self._answers = dict(answers or {})
        self._scopes = scopes
        self._certificates = certificates
        self._certificate_map = certificate_map
        self._guarded: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.split("/")[1] in EXEMPT_SERVICES:
            return handler
        cached = self._guarded.get(method)
        if cached is None or cached[0] is not handler:
            cached = (handler, self._guard(method, handler))
            self._guarded[method] = cached
        return cached[1]

    async def _admit(
        self,
        method: str,
        raw: bytes,
        context: Context,
        deserialize: Callable[[bytes], Any],
        answered: bool = False,
    ) -> Any:
        """Authenticate, then parse the body and check scope and tenant; the request, or
        an abort (`_Refused` instead when the call is `answered`)."""
        try:
            metadata = context.invocation_metadata()
            authorization = _authorization(metadata)
            key = self._certificate(authorization, context)
            if key is None:
                peer = relayed_peer(metadata, self._relay) or context.peer()
                key = await self._auth.authenticate(authorization, peer=peer)
        except Exception as exc:  # refused (or the store is down): answer, never admit
            log.debug("refused call to %s: %s", method, exc)
            await _refuse(exc, context, answered)
        _verified.set((authorization or "", key))
        try:
            request = decode(deserialize, raw)
            if isinstance(request, Undecodable):
                raise request.error()
            reason = refusal(method, self._scopes.get(method), key, request)
            if reason is not None:
                raise PermissionDenied(reason)
        except AuthzError as exc:
            await _refuse(exc, context, answered)
        if self._gate is not None:
            named = self._gate.pending(request)
            if named is not None:
                await self._gate.admit(named, context)
        return request

    def _certificate(self, authorization: str | None, context: Context) -> ApiKey | None:
        """The identity of the client certificate, for a call that presents no key."""
        if authorization is not None or not self._certificates:
            return None
        return certificate_identity(context.auth_context(), self._certificate_map)

    def _guard(self, method: str, handler: Handler) -> Handler:
        deserialize: Any = handler.request_deserializer
        serializers = {
            "request_deserializer": _raw,
            "response_serializer": handler.response_serializer,
        }
        admit = self._admit
        auth = self._auth
        certificate = self._certificate

        def verify(context: Context) -> Callable[[], Awaitable[ApiKey]]:
            authorization = _authorization(context.invocation_metadata())
            cert_key = certificate(authorization, context)
            if cert_key is not None:
                # The handshake verified the certificate; nothing revokes it mid-stream.
                return lambda: asyncio.sleep(0, cert_key)
            return lambda: auth.authenticate(authorization, fresh=True, recheck=True)

        # The stubs type behaviors for the sync server; here they are coroutines or
        # async generators taking an aio context.
        unary: Any = handler.unary_unary
        stream: Any = handler.unary_stream
        answer = self._answers.get(method)
        if unary is not None and answer is not None:

            async def answered_unary(raw: bytes, context: Context) -> Any:
                try:
                    request = await admit(method, raw, context, deserialize, True)
                except _Refused:
                    return answer()
                except Exception:  # a bug before the servicer must not become an error
                    log.exception("refused call to %s", method)
                    return answer()
                return await unary(request, context)

            return grpc.unary_unary_rpc_method_handler(answered_unary, **serializers)
        if unary is not None:

            async def guarded_unary(raw: bytes, context: Context) -> Any:
                request = await admit(method, raw, context, deserialize)
                return await unary(request, context)

            return grpc.unary_unary_rpc_method_handler(guarded_unary, **serializers)
        if stream is not None:
            if inspect.isasyncgenfunction(stream):

                async def guarded_stream(raw: bytes, context: Context) -> AsyncIterator[Any]:
                    request = await admit(method, raw, context, deserialize)
                    responses = stream(request, context)
                    checked = rechecked(responses, verify(context), auth.recheck_s, context)
                    try:
                        async for response in checked:
                            yield response
                    finally:
                        await checked.aclose()

                return grpc.unary_stream_rpc_method_handler(guarded_stream, **serializers)

            async def guarded_writer(raw: bytes, context: Context) -> None:
                request = await admit(method, raw, context, deserialize)
                work = stream(request, context)  # a handler that calls context.write
                await run_rechecked(work, verify(context), auth.recheck_s, context)

            return grpc.unary_stream_rpc_method_handler(guarded_writer, **serializers)
        # A client stream has no request to check before the servicer reads it; this
        # service defines none, so refuse rather than admit unchecked.
        return _refusing(handler, PermissionDenied(f"`{echo(method)}` cannot be authorized"))
