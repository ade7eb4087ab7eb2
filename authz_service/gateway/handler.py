"""One HTTP request in, one gateway verdict out: the policy of the Envoy adapter, free of gRPC.

    path escapes (escapes.py) -> route (first match) -> identity (JWT or trusted headers)
    -> Check through the normal pipeline -> Reply (allow with upstream headers, 401, or
    403 with a JSON body)

Fail closed: every path that is not an explicit ALLOWED from the pipeline (or a public /
unmatched-allow route) is a denial, including any exception raised on the way. The
servicer turns a `Reply` into Envoy's `CheckResponse` and never answers with a gRPC error,
so even an Envoy configured with `failure_mode_allow: true` cannot let a request through
on our failure.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from authz_service.engine import CheckItem, Decision
from authz_service.errors import AuthzError, InvalidArgument, Unauthenticated
from authz_service.gateway.config import GatewayConfig, JwtConfig
from authz_service.gateway.escapes import ambiguous_escape
from authz_service.gateway.identity import HeaderIdentity, IdentitySource, JwtIdentity, Principal
from authz_service.gateway.tokens import JwksKeys, JwtVerifier, MissingCredentials, jwks_loader
from authz_service.model import parse_object

__all__ = ["CheckFn", "Gateway", "HttpRequest", "Reply"]

log = logging.getLogger(__name__)

CheckFn = Callable[[str, CheckItem], Awaitable[tuple[Decision, str]]]
"""(tenant, item) -> (decision, decision id), through the same pipeline as gRPC Check."""

JSON = (("content-type", "application/json"),)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str  # the request target as sent: path and query
    headers: Mapping[str, str]  # lowercase names
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """`allowed`: `headers` are set on the upstream request (overwriting any the client
    sent) and `remove_headers` removed from it. Otherwise `status`, `headers` and `body`
    are the response sent to the client."""

    allowed: bool
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    remove_headers: tuple[str, ...] = ()
    body: str = ""


def _json(
    status: int, fields: dict[str, Any], request: HttpRequest, *extra: tuple[str, str]
) -> Reply:
    if request.request_id:
        fields["request_id"] = request.request_id
    body = json.dumps(fields, separators=(",", ":"))
    return Reply(allowed=False, status=status, headers=(*JSON, *extra), body=body)


def _cgi_key(header: str) -> str:
    """The name a CGI or WSGI upstream knows a header by, up to case: `_` and `-` alike."""
    return header.lower().replace("_", "-")


def _identity(config: GatewayConfig) -> IdentitySource:
    spec = config.identity
    if isinstance(spec, JwtConfig):
        load = jwks_loader(file=spec.jwks_file, url=spec.jwks_url)
        keys = JwksKeys(
            load,
            frozenset(spec.algorithms),
            cache_s=spec.jwks_cache_s,
            min_refresh_s=spec.jwks_min_refresh_s,
        )
        verifier = JwtVerifier(keys, spec.issuer, spec.audiences, spec.algorithms, spec.leeway_s)
        return JwtIdentity(
            verifier,
            header=spec.header,
            subject_type=spec.subject_type,
            subject_claim=spec.subject_claim,
            tenant_claim=spec.tenant_claim,
            tenant=spec.tenant,
        )
    return HeaderIdentity(spec.tenant_header, spec.subject_header, spec.subject_type)


class Gateway:
    def __init__(self, config: GatewayConfig, identity: IdentitySource | None = None) -> None:
        self.config = config
        self._identity = identity or _identity(config)
        self._header_names = tuple(name for name, _ in config.upstream_headers)
        self._header_keys = frozenset(map(_cgi_key, self._header_names))

    async def handle(self, request: HttpRequest, check: CheckFn) -> Reply:
        try:
            return await self._handle(request, check)
        except Exception:
            log.exception("gateway check failed; denying (request %s)", request.request_id)
            return self.error(request)

    def error(self, request: HttpRequest) -> Reply:
        return _json(403, {"decision": "DENIED", "reason": "authorization failed"}, request)

    def unavailable(self, request: HttpRequest) -> Reply:
        """The server is shutting down: denied, but worth retrying (another instance, or
        this one once restarted, will judge it)."""
        reason = "the authorization service is shutting down; retry the request"
        return _json(503, {"decision": "DENIED", "reason": reason}, request)

    def _lookalikes(self, request: HttpRequest) -> tuple[str, ...]:
        """The client's headers that an upstream may read as one of ours, spelled
        otherwise: WSGI and CGI turn `x_authz_subject` and `x-authz-subject` alike into
        HTTP_X_AUTHZ_SUBJECT. Ours are set or removed by name, which misses these."""
        return tuple(
            name
            for name in request.headers
            if _cgi_key(name) in self._header_keys and name not in self._header_names
        )

    def _pass(self, request: HttpRequest) -> Reply:
        # Nothing was checked, so no identity header may reach the upstream, even one the
        # client wrote itself.
        remove = (*self._header_names, *self._lookalikes(request))
        return Reply(allowed=True, remove_headers=remove)

    async def _handle(self, request: HttpRequest, check: CheckFn) -> Reply:
        ambiguous = ambiguous_escape(request.path)
        if ambiguous is not None:  # before routing: no route or `unmatched` may pass it
            return _json(403, {"decision": "DENIED", "reason": ambiguous}, request)
        found = self.config.route(request.method, request.path)
        if found is None:
            if self.config.unmatched == "allow":
                return self._pass(request)
            return _json(403, {"decision": "DENIED", "reason": "no route matches"}, request)
        route, captured = found
        if route.public or route.resource is None or route.action is None:
            return self._pass(request)
        try:
            principal = await self._identity.principal(request.headers)
        except Unauthenticated as exc:
            return self._unauthenticated(request, exc)
        except AuthzError as exc:  # e.g. the issuer's keys could not be loaded
            log.warning("gateway identity failed (%s); denying", exc.message)
            return self.error(request)
        try:
            item = CheckItem(
                resource=parse_object(route.resource.render(captured)),
                permission=route.action.render(captured),
                subject=principal.subject,
            )
        except InvalidArgument:
            reason = "request does not name a valid resource"
            return _json(403, {"decision": "DENIED", "reason": reason}, request)
        try:
            decision, decision_id = await check(principal.tenant, item)
        except AuthzError as exc:
            log.info("gateway check failed (%s: %s); denying", type(exc).__name__, exc.message)
            return self.error(request)
        if decision is not Decision.ALLOWED:
            # CONDITIONAL too: a gateway has no caveat context to add, so it cannot pass.
            return _json(403, {"decision": "DENIED", "decision_id": decision_id}, request)
        return self._allowed(request, principal, item, decision_id)

    def _allowed(
        self, request: HttpRequest, principal: Principal, item: CheckItem, decision_id: str
    ) -> Reply:
        values = {
            "tenant": principal.tenant,
            "subject": str(principal.subject),
            "subject_type": principal.subject.type,
            "subject_id": principal.subject.id,
            "resource": str(item.resource),
            "action": item.permission,
            "decision_id": decision_id,
        }
        headers = tuple((name, t.render(values)) for name, t in self.config.upstream_headers)
        # Ours overwrite the client's of the same name; lookalikes must go.
        return Reply(allowed=True, headers=headers, remove_headers=self._lookalikes(request))

    def _unauthenticated(self, request: HttpRequest, exc: Unauthenticated) -> Reply:
        extra: tuple[tuple[str, str], ...] = ()
        if self._identity.bearer:
            challenge = "Bearer"
            if not isinstance(exc, MissingCredentials):
                challenge = 'Bearer error="invalid_token"'
            extra = (("www-authenticate", challenge),)
        fields = {"error": "unauthenticated", "message": exc.message}
        return _json(401, fields, request, *extra)
