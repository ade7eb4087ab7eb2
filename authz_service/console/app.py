"""The console's ASGI application: login, logout, the home page, static files, and the
routes of every registered page, each wrapped by `_guarded` (page.py says what it does).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from importlib import resources
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from authz_service.api.http_body import CLOSE, BodyRefused, read_body
from authz_service.console.auth import COOKIE, LOGIN_COOKIE, Session, Sessions, TooManySessions
from authz_service.console.backend import Backend
from authz_service.console.page import Ctx, Page, PageRoute, client
from authz_service.errors import AuthzError

__all__ = ["build_app"]

# Form bodies larger than this are refused before parsing (a validation file is small).
MAX_FORM_BYTES = 1 << 20
_HEADERS = {
    # No framing by other sites (clickjacking), no sniffing, scripts only from here.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _templates() -> Jinja2Templates:
    folder = resources.files(__package__).joinpath("templates")
    return Jinja2Templates(directory=str(folder))


class _Console:
    def __init__(
        self, sessions: Sessions, backend: Backend, pages: Sequence[Page], *, secure: bool
    ) -> None:
        self.sessions = sessions
        self.backend = backend
        self.pages = tuple(pages)
        self.secure = secure
        self.templates = _templates()

    def _cookie(self, response: Response, session_id: str) -> None:
        response.set_cookie(
            COOKIE,
            session_id,
            httponly=True,
            samesite="strict",
            secure=self.secure,
            path="/",
        )

    async def session(self, request: Request) -> tuple[Session | None, str | None]:
        """The request's session, and the id of one made for it (auth off: anonymous)."""
        found = await self.sessions.current(request.cookies.get(COOKIE))
        if found is not None or self.sessions.auth:
            return found, None
        session_id, session = self.sessions.anonymous(peer=client(request))
        return session, session_id

    def visible(self, session: Session) -> list[Page]:
        return [p for p in self.pages if session.viewer.can(p.needs)]

    def refused(self, request: Request, session: Session, page: Page, why: str) -> Response:
        ctx = Ctx(request, session, self.backend, self.templates, self.visible(session), page)
        return ctx.render("refused.html", status_code=403, message=why)

    def guarded(self, page: Page, route: PageRoute) -> Route:
        async def endpoint(request: Request) -> Response:
            session, new_id = await self.session(request)
            if session is None:
                target = quote(request.url.path, safe="/")
                return RedirectResponse(f"/login?next={target}", status_code=303)
            for scope in (page.needs, route.needs):
                if not session.viewer.can(scope):
                    return self.refused(request, session, page, f"needs the `{scope}` scope")
            form: dict[str, Any] = {}
            if request.method == "POST":  # its body is at most MAX_FORM_BYTES (_BodyLimit)
                async with request.form(max_files=1, max_fields=64) as parsed:
                    form = {
                        k: (await v.read()).decode("utf-8", "replace") if hasattr(v, "read") else v
                        for k, v in parsed.items()
                    }
                if not session.csrf_ok(form.get("csrf")):
                    return self.refused(request, session, page, "the form's CSRF token is wrong")
            ctx = Ctx(
                request, session, self.backend, self.templates, self.visible(session), page, form
            )
            response = await route.endpoint(ctx)
            if new_id is not None:
                self._cookie(response, new_id)
            return response

        return Route(page.path + route.path, endpoint, methods=list(route.methods))

    async def home(self, request: Request) -> Response:
        session, new_id = await self.session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        visible = self.visible(session)
        home = Page("", "Home", None, ())
        response: Response
        if len(visible) == 0:
            response = self.refused(request, session, home, "this key sees no page")
        else:
            ctx = Ctx(request, session, self.backend, self.templates, visible, home)
            response = ctx.render("home.html")
        if new_id is not None:
            self._cookie(response, new_id)
        return response

    async def login(self, request: Request) -> Response:
        target = _local(request.query_params.get("next", "/"))
        if not self.sessions.auth:
            return RedirectResponse(target, status_code=303)
        error, status = "", 200
        if request.method == "POST":
            async with request.form(max_files=0, max_fields=4) as form:
                key = str(form.get("api_key") or "")
                target = _local(str(form.get("next") or "/"))
                token = str(form.get("csrf") or "")
            # Double submit: another site cannot read the cookie to copy it into a form,
            # so it cannot sign a victim's browser in with the other site's key.
            expected = request.cookies.get(LOGIN_COOKIE, "")
            if not expected or not hmac.compare_digest(token, expected):
                error, status = "the sign-in form expired; please try again", 401
            else:
                try:
                    session_id, _ = await self.sessions.login(key, peer=client(request))
                except TooManySessions as exc:  # the key is good; there is no room now
                    error, status = exc.message, 429
                except AuthzError as exc:
                    error, status = exc.message, 401
                else:
                    response = RedirectResponse(target, status_code=303)
                    self._cookie(response, session_id)
                    response.delete_cookie(LOGIN_COOKIE, path="/login")
                    return response
        token = secrets.token_urlsafe(32)
        page = self.templates.TemplateResponse(
            request,
            "login.html",
            {"error": error, "next": target, "csrf": token},
            status_code=status,
        )
        page.set_cookie(
            LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=self.secure, path="/login"
        )
        return page

    async def logout(self, request: Request) -> Response:
        """Sign-out is a form like any other: without the session's token it changes
        nothing, the browser's cookie included. Another site's form arrives without the
        (SameSite=Strict) cookie, so it finds no session: clearing the cookie then would
        sign the visitor out of their browser while their session lived on."""
        session, _ = await self.session(request)
        response = RedirectResponse("/login", status_code=303)
        if session is None:
            return response
        async with request.form(max_files=0, max_fields=4) as form:
            token = str(form.get("csrf") or "")
        if not session.csrf_ok(token):
            home = Page("", "Sign out", None, ())
            return self.refused(request, session, home, "the form's CSRF token is wrong")
        self.sessions.logout(request.cookies.get(COOKIE))
        response.delete_cookie(COOKIE, path="/")
        return response


def _local(target: str) -> str:
    """`target` if it is a path on this site, else `/`: no open redirect after login."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


class _BodyLimit:
    """A request body is read only up to MAX_FORM_BYTES, whether its size is declared
    (Content-Length) or not (chunked), and only for BODY_TIMEOUT_S: past either the
    answer is 413 or 408 and the rest is never read (api/http_body.py). /login takes
    posts before anyone is signed in, so this bounds what an unknown client can make the
    console hold. The body is read here, then handed on whole."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(scope, receive, limit=MAX_FORM_BYTES)
        except BodyRefused as exc:
            await _refuse(send, exc)
            return
        if body is None:
            return  # the client went away
        whole = {"type": "http.request", "body": body, "more_body": False}
        delivered = False

        async def replay() -> Any:
            nonlocal delivered
            if delivered:
                return await receive()  # only a disconnect can follow
            delivered = True
            return whole

        await self.app(scope, replay, send)


async def _refuse(send: Any, refused: BodyRefused) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": refused.status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), CLOSE],
        }
    )
    await send({"type": "http.response.body", "body": f"{refused.message}\n".encode()})


class _SecurityHeaders:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in _HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def build_app(sessions: Sessions, backend: Backend, pages: Sequence[Page], *, secure: bool) -> Any:
    """The ASGI app. `secure`: the console serves TLS, so its cookie is `Secure`."""
    console = _Console(sessions, backend, pages, secure=secure)
    static = resources.files(__package__).joinpath("static")
    routes: list[BaseRoute] = [
        Route("/", console.home),
        Route("/login", console.login, methods=["GET", "POST"]),
        Route("/logout", console.logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(static)), name="static"),
    ]
    routes += [console.guarded(page, route) for page in pages for route in page.routes]
    return _SecurityHeaders(_BodyLimit(Starlette(routes=routes)))
