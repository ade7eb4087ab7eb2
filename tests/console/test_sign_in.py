"""Signing in to the console: the server's own key checks, a session cookie, CSRF."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.console.conftest import Console, sign_in


def test_a_page_asks_for_a_key_and_a_wrong_key_is_refused(page: Page, console: Console) -> None:
    page.goto(f"{console.url}/playground")
    expect(page).to_have_url(f"{console.url}/login?next=/playground")
    page.get_by_label("API key").fill(
        "azk_notakeyatall_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    )
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("api key")
    expect(page.get_by_label("API key")).to_be_visible()


def test_the_session_cookie_holds_no_key_and_is_strict(page: Page, console: Console) -> None:
    sign_in(page, console, console.keys.demo_reader)
    cookies = page.context.cookies()
    assert [c["name"] for c in cookies] == ["authz_console"]
    cookie = cookies[0]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert console.keys.demo_reader not in cookie["value"]
    assert console.keys.demo_reader.split("_")[1] not in cookie["value"]


def test_a_form_without_its_csrf_token_is_refused(page: Page, console: Console) -> None:
    sign_in(page, console, console.keys.demo_reader)
    response = page.request.post(
        f"{console.url}/playground/validate", form={"schema": "definition user {}"}
    )
    assert response.status == 403
    assert "CSRF" in response.text()


def test_signing_out_ends_the_session(page: Page, console: Console) -> None:
    sign_in(page, console, console.keys.demo_reader)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{console.url}/login")
    page.goto(f"{console.url}/playground")
    expect(page).to_have_url(f"{console.url}/login?next=/playground")
