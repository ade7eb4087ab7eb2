"""The SCIM ASGI application: `/scim/v2/{tenant}/...`, authenticated by API keys.

scim2-server's ASGIApplication does the protocol; this subclass routes by the tenant
segment of the path, authenticates `Authorization: Bearer <api key>` (a key with the
`scim` scope, bound to the tenant or a platform key), and adds `X-Authz-Token`, the
consistency token of the write a push made, to the response.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any
from urllib.parse import parse_qsl

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    ETag,
    Filter,
    ForbiddenException,
    NotFoundException,
    Patch,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
)
from scim2_server.applications.asgi import ASGIApplication, Receive, Scope, Send
from scim2_server.applications.base import VERSION_PREFIX
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.service import ScimService
from scim2_server.utils import load_default_resource_types, load_default_schemas

from authz_service import deadline
from authz_service.api.auth import Authenticator
from authz_service.api.http_body import BodyRefused, has_body, read_body
from authz_service.api.limits import http_peer
from authz_service.api.scim.compat import standard_patch
from authz_service.api.scim.context import RequestState, current, enter
from authz_service.api.scim.errors import body_error, scim_error
from authz_service.api.scim.storage import ProvisioningStorage
from authz_service.api.tokens import encode_token
from authz_service.credentials import Scope as KeyScope
from authz_service.errors import AuthzError, echo
from authz_service.service.provisioning import ProvisioningService

__all__ = ["MAX_BODY_BYTES", "PREFIX", "TOKEN_HEADER", "ScimApp"]

log = logging.getLogger(__name__)

PREFIX = "/scim/v2/"  # then the tenant, then the SCIM path
TOKEN_HEADER = "X-Authz-Token"
MAX_RESULTS = 1000
# Larger bodies are refused (413) unread: a Group replaced whole with ~25,000 members fits;
# IdPs send memberships in PATCHes of a few.
MAX_BODY_BYTES = 4 << 20
# The tenant rule of the gRPC API (api/convert.py).
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_TENANT_RE = re.compile(r"[a-zA-Z0-9_\-]{1,64}")


def _provider() -> ScimProvider:
    config = ServiceProviderConfig(
        patch=Patch(supported=True),
        # Off: one push is one request, so its effect and its record stay one unit.
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),  # passwords are never stored
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="API key",
                description="Authorization: Bearer <api key with the scim scope>",
                primary=True,
            )
        ],
    )
    return ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config
    )


class ScimApp(ASGIApplication):
    def __init__(
        self,
        provisioning: ProvisioningService,
        authenticator: Authenticator | None,
        *,
        default_deadline_s: float,
    ) -> None:
        provider = _provider()
        service = ScimService(provider)
        super().__init__(ProvisioningStorage(provisioning, service), provider, service)
        self._authenticator = authenticator
        self._deadline_s = default_deadline_s
        self._provisioning = provisioning

    @staticmethod
    def get_base_url(scope: Scope) -> str:
        """The tenant's SCIM root: the root path set below already ends in `/v2/<tenant>`."""
        return ASGIApplication.get_base_url(scope).removesuffix(VERSION_PREFIX)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.serve_lifespan(receive, send)
            return
        path: str = scope["path"]
        tenant = path.removeprefix(PREFIX).partition("/")[0]
        scope = {**scope, "root_path": f"{PREFIX}{tenant}"}
        request = self._request(scope)
        client = scope.get("client")
        peer = http_peer(client[0], client[1]) if client else None  # gRPC's form: one count
        enter(RequestState(tenant, request.method.upper(), request.path, peer=peer))
        response: ScimResponse
        if not path.startswith(PREFIX) or not _TENANT_RE.fullmatch(tenant):
            error = NotFoundException(
                detail=f"no SCIM endpoint at `{echo(path)}`; the endpoints are {PREFIX}<tenant>/"
            )
            response = self.handle_exception(request, error)
            await self._answer_unread(scope, response, send)
            return
        try:
            body = await self._body(scope, receive, request)
        except Exception as exc:
            response = self.finalize_response(request, self.handle_exception(request, exc))
            if request.method.upper() in _WRITES:
                await self._note(tenant, response)
            await self._answer_unread(scope, response, send)
            return
        if body is None:
            return  # the client went away
        request.body = standard_patch(body) if request.method.upper() == "PATCH" else body
        # The server's default deadline, as for a gRPC call without one: every read and
        # write of the push is bounded by it (the body had its own bound above).
        with deadline.within(time.monotonic() + self._deadline_s):
            response = await self.serve(request)
            if request.method.upper() in _WRITES:
                await self._note(tenant, response)
        await self.send_response(response, send)

    def _request(self, scope: Scope) -> ScimRequest:
        """The request as scim2-server's read_request makes it, without the body: that is
        read only once the caller is admitted (`_body`)."""
        return ScimRequest(
            method=scope["method"],
            base_url=self.get_base_url(scope),
            path=self.split_path(self.get_path(scope)),
            query=dict(parse_qsl(scope["query_string"].decode(), keep_blank_values=True)),
            headers=[(name.decode(), value.decode()) for name, value in scope["headers"]],
        )

    async def _body(self, scope: Scope, receive: Receive, request: ScimRequest) -> bytes | None:
        """The body of an admitted request (None: the client went away). An unknown or
        refused caller gets its answer from the headers alone, so that no one without a
        key can make worker 0, which serves gRPC too, read a body."""
        admitted = await self._admit(request)
        # An endpoint open to anyone (discovery: ServiceProviderConfig, ...) takes no body.
        limit = MAX_BODY_BYTES if admitted else 0
        try:
            return await read_body(scope, receive, limit=limit)
        except BodyRefused as exc:
            raise body_error(exc) from None

    async def _answer_unread(self, scope: Scope, response: ScimResponse, send: Send) -> None:
        """Send an answer given before the body was read whole, closing the connection:
        otherwise uvicorn would read the rest of the body to reach the next request."""
        if has_body(scope):
            response.headers["Connection"] = "close"
        await self.send_response(response, send)

    async def _note(self, tenant: str, response: ScimResponse) -> None:
        """The sync status (GetScimSync): the last push, the last refused one and why.
        A request with no valid key (401), held off after failed keys (429), or with
        another tenant's key (403 before `_admit` took the key as this tenant's), is not
        recorded: anyone can send one, and it is not the IdP's. The push itself is done
        either way, so a status that cannot be stored is logged, not turned into a failed
        push."""
        if response.status in (401, 429) or (response.status == 403 and current().key is None):
            return
        failed = response.status >= 400
        detail = (response.body or {}).get("detail", str(int(response.status)))
        try:
            await self._provisioning.note_push(tenant, str(detail) if failed else None)
        except Exception:
            log.warning("the SCIM sync status of tenant %s was not stored", tenant, exc_info=True)

    async def _admit(self, request: ScimRequest) -> bool:
        """Authenticate the caller and check its key's scope and tenant (SCIMException
        when refused); whether a key was asked for and admitted (False: an endpoint open
        to anyone; True as well when authentication is off)."""
        if self._authenticator is None:
            return True
        if not self.needs_auth(request):
            return False
        state = current()
        try:
            with deadline.within(time.monotonic() + self._deadline_s):
                key = await self._authenticator.authenticate(
                    request.header("Authorization"), peer=state.peer
                )
        except AuthzError as exc:
            raise scim_error(exc) from None
        if not key.allows_tenant(state.tenant):
            raise ForbiddenException(
                detail=f"api key `{key.key_id}` is not bound to tenant `{echo(state.tenant)}`"
            )
        state.key = key  # the tenant's own key from here: its refusals are noted (_note)
        if KeyScope.SCIM not in key.scopes:
            raise ForbiddenException(detail=f"api key `{key.key_id}` lacks the scim scope")
        return True

    async def dispatch_request(self, request: ScimRequest) -> ScimResponse:
        """Serve a request whose caller `_admit` let in."""
        state = current()
        response = await self.handler.handle(request)
        if state.revision is None and request.method.upper() in _WRITES and response.status < 400:
            # scim2-server skips the storage for a PATCH that changes nothing; the caller
            # still gets a token to ask decisions at.
            state.revision = await self._provisioning.head(state.tenant)
        return response

    def finalize_response(self, request: ScimRequest, response: ScimResponse) -> ScimResponse:
        state = current()
        if state.revision is not None:
            response.headers[TOKEN_HEADER] = encode_token(state.tenant, state.revision)
        return super().finalize_response(request, response)

    def get_subject(self, request: ScimRequest) -> Any:
        return current().key
