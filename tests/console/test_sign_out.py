"""Signing out is a POST form like any other (docs/console.md "CSRF"): without the
session's token it is refused and changes nothing, neither the server's session nor the
browser's cookie; with it, both end.

Sign-out used to clear the cookie whatever the form held, and the session cookie being
SameSite=Strict, another site's form arrives without it: any page could sign a visitor
out of the console in their browser, while the session itself lived on."""

from __future__ import annotations

from pathlib import Path

import httpx2 as httpx

from authz_service.console.auth import COOKIE
from tests.console.harness import key, serving, sign_in


def _sets_cookie(reply: httpx.Response) -> bool:
    return any(c.startswith(f"{COOKIE}=") for c in reply.headers.get_list("set-cookie"))


async def test_a_sign_out_without_the_sessions_token_changes_nothing(tmp_path: Path) -> None:
    async with serving(tmp_path) as (app, base):
        api_key = await key(app)
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            csrf = await sign_in(http, api_key)
            for form in ({}, {"csrf": ""}, {"csrf": "x" * len(csrf)}):
                reply = await http.post("/logout", data=form)
                assert reply.status_code == 403, form
                assert "CSRF" in reply.text
                assert not _sets_cookie(reply)
            assert (await http.get("/playground")).status_code == 200
        # Another site's form: the Strict cookie stays home, so no session is seen here.
        async with httpx.AsyncClient(base_url=base, timeout=10) as elsewhere:
            reply = await elsewhere.post("/logout", data={})
            assert reply.status_code == 303
            assert reply.headers["location"] == "/login"
            assert not _sets_cookie(reply)


async def test_a_sign_out_with_the_token_ends_the_session_and_clears_the_cookie(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path) as (app, base):
        api_key = await key(app)
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            csrf = await sign_in(http, api_key)
            session_id = http.cookies[COOKIE]
            reply = await http.post("/logout", data={"csrf": csrf})
            assert reply.status_code == 303
            assert reply.headers["location"] == "/login"
            assert _sets_cookie(reply)
            assert COOKIE not in http.cookies
        async with httpx.AsyncClient(
            base_url=base, timeout=10, cookies={COOKIE: session_id}
        ) as replay:
            reply = await replay.get("/playground")
            assert reply.status_code == 303
            assert reply.headers["location"] == "/login?next=/playground"
