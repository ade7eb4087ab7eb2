"""The Why page in a real browser: live explanations and logged decisions of tenant
`demo`, on a real server on PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.console.conftest import Console, console_errors, sign_in


def _explain(page: Page, resource: str, permission: str, subject: str, context: str = "") -> None:
    form = page.get_by_role("form", name="A live check")
    form.get_by_label("Resource").fill(resource)
    form.get_by_label("Permission").fill(permission)
    form.get_by_label("Subject").fill(subject)
    form.get_by_label("Context").fill(context)
    form.get_by_role("button", name="Explain").click()


def test_a_caveated_grant_shows_its_caveat_and_context_then_the_logged_decision(
    page: Page, console: Console, screenshots: Path
) -> None:
    with console_errors(page) as errors:
        sign_in(page, console, console.keys.demo_admin)
        page.get_by_role("navigation").get_by_role("link", name="Why").click()
        expect(page.get_by_role("form", name="A live check").get_by_label("Tenant")).to_have_value(
            "demo"
        )

        # Without the caveat's parameter: CONDITIONAL, naming what is missing.
        _explain(page, "document:vpn-guide", "view", "user:dave")
        answer = page.get_by_test_id("answer")
        expect(answer.get_by_test_id("decision")).to_contain_text("CONDITIONAL")
        expect(answer.get_by_test_id("decision")).to_contain_text("user_ip")
        expect(answer.get_by_test_id("steps")).to_contain_text("caveat ip_allowlist")

        # With it: ALLOWED, and the graph shows the caveat with the stored context.
        _explain(page, "document:vpn-guide", "view", "user:dave", '{"user_ip": "10.1.2.3"}')
        expect(answer.get_by_test_id("decision")).to_have_text("ALLOWED")
        steps = answer.get_by_test_id("steps")
        expect(steps).to_contain_text("document:vpn-guide#viewer@user:dave")
        expect(steps).to_contain_text("10.0.0.0/8")
        graph = answer.get_by_test_id("graph")
        expect(
            graph.locator("svg g.node.allowed", has_text="caveat ip_allowlist")
        ).not_to_have_count(0)
        page.screenshot(path=screenshots / "why.png", full_page=True)

        # The same decision as the log recorded it.
        decision_id = answer.get_by_test_id("decision-id").inner_text()
        page.get_by_role("link", name="This decision as logged").click()
        logged = page.get_by_test_id("logged")
        expect(logged.get_by_test_id("decision")).to_have_text("ALLOWED")
        expect(logged).to_contain_text(decision_id)
        expect(logged).to_contain_text("document:vpn-guide")
        expect(logged).to_contain_text("10.1.2.3")
        expect(logged.get_by_test_id("graph").locator("svg")).to_be_visible()
        page.screenshot(path=screenshots / "why-logged.png", full_page=True)
    assert errors == []


def test_a_denial_shows_the_missing_path(page: Page, console: Console) -> None:
    sign_in(page, console, console.keys.demo_reader)
    page.goto(f"{console.url}/why")
    _explain(page, "document:roadmap", "view", "user:bob")
    answer = page.get_by_test_id("answer")
    expect(answer.get_by_test_id("decision")).to_have_text("DENIED")
    expect(answer.get_by_test_id("graph")).to_contain_text("excluded")
    expect(answer.get_by_test_id("steps")).to_contain_text("document:roadmap#banned@user:bob")


def test_a_check_only_key_cannot_read_the_log_nor_another_tenant(
    page: Page, console: Console
) -> None:
    sign_in(page, console, console.keys.demo_reader)
    page.goto(f"{console.url}/why")
    expect(page.get_by_role("form", name="A logged decision")).to_have_count(0)
    page.goto(f"{console.url}/why?tenant=demo&decision_id=01J0000000000000000000000")
    expect(page.get_by_role("alert")).to_contain_text("`audit` scope")
    # The server refuses another tenant's data to this key; the page says so.
    page.goto(
        f"{console.url}/why?tenant=globex&resource=document:readme&permission=view&subject=user:alice"
    )
    expect(page.get_by_test_id("answer").get_by_role("alert")).to_contain_text(
        re.compile("PERMISSION_DENIED")
    )


def test_why_works_without_javascript(browser_no_js: Page, console: Console) -> None:
    page = browser_no_js
    sign_in(page, console, console.keys.demo_reader)
    page.goto(f"{console.url}/why")
    _explain(page, "document:readme", "view", "user:alice")
    answer = page.get_by_test_id("answer")
    expect(answer.get_by_test_id("decision")).to_have_text("ALLOWED")
    expect(answer.get_by_test_id("steps")).to_contain_text("document:readme#owner@user:alice")
