"""The page pattern: a page is a `Page` value listing its routes; `pages/__init__.py`
lists the pages. The app (console/app.py) turns each route into a Starlette route that
first finds the session (else: the login page), then checks the page's and the route's
scope (else: 403 naming the scope), then, for a POST, reads the form and checks its CSRF
token (else: 403), and only then calls the endpoint with a `Ctx`.

An endpoint therefore never sees an unauthenticated request or an unchecked form. It
renders a template with `ctx.render`, which also knows whether htmx asked for a fragment
(`ctx.htmx`), and calls the server through `ctx.backend` with `ctx.metadata` (the
viewer's key, and the browser's address for the server's failure backoff). See
docs/console.md, "Adding a page".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.templating import Jinja2Templates

from authz_service.api.limits import http_peer
from authz_service.console.auth import Session, Viewer
from authz_service.console.backend import Backend
from authz_service.credentials import Scope

__all__ = ["Ctx", "Endpoint", "Page", "PageRoute", "client"]

Endpoint = Callable[["Ctx"], Awaitable[Response]]


def client(request: Request) -> str | None:
    """The browser's address as gRPC names peers, so one failure backoff per address
    covers every door (api/limits.py): the console's sign-in and its calls, SCIM, gRPC."""
    if request.client is None:
        return None
    return http_peer(request.client.host, request.client.port)


@dataclass(frozen=True, slots=True)
class PageRoute:
    path: str  # below the page's own path: "" is the page, "/check" an action
    endpoint: Endpoint
    methods: tuple[str, ...] = ("GET",)
    needs: Scope | None = None  # beyond the page's scope, e.g. WRITE for a change


@dataclass(frozen=True, slots=True)
class Page:
    slug: str  # the URL: /<slug>
    title: str  # the navigation label and <title>
    needs: Scope | None  # the scope a key must hold to see the page; None: any key
    routes: Sequence[PageRoute]
    summary: str = ""  # one line on the home page

    @property
    def path(self) -> str:
        return f"/{self.slug}"


@dataclass
class Ctx:
    """What an endpoint gets: the request, who is asking, the form (POST), the server."""

    request: Request
    session: Session
    backend: Backend
    templates: Jinja2Templates
    pages: Sequence[Page]  # the pages this viewer may see, for the navigation
    page: Page
    form: Mapping[str, Any] = field(default_factory=dict)

    @property
    def viewer(self) -> Viewer:
        return self.session.viewer

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return self.backend.metadata(self.viewer, client(self.request))

    @property
    def htmx(self) -> bool:
        """True when htmx sent the request and wants a fragment, not a whole page."""
        return self.request.headers.get("HX-Request") == "true"

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name, default)
        return value if isinstance(value, str) else default

    def can(self, scope: Scope | None) -> bool:
        return self.viewer.can(scope)

    def render(self, template: str, *, status_code: int = 200, **values: Any) -> HTMLResponse:
        values.update(
            viewer=self.viewer,
            pages=self.pages,
            page=self.page,
            csrf=self.session.csrf,
            auth=self.viewer.token is not None,
        )
        return self.templates.TemplateResponse(
            self.request, template, values, status_code=status_code
        )
