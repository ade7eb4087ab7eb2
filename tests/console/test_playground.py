"""The playground in a real browser, against a real server on PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.console.conftest import Console, console_errors, sign_in


def test_a_schema_author_loads_the_demo_breaks_the_schema_and_fixes_it(
    page: Page, console: Console, screenshots: Path
) -> None:
    with console_errors(page) as errors:
        sign_in(page, console, console.keys.demo_reader)
        page.get_by_role("navigation").get_by_role("link", name="Playground").click()
        page.get_by_role("button", name="Load demo").click()
        schema = page.get_by_label("Schema")
        expect(schema).to_have_value(re.compile(r"definition document"))
        expect(page.get_by_test_id("valid")).to_contain_text("14 relationships")

        # A typo on line 10 (`member: usr`): the error names the line, as you type.
        text = schema.input_value()
        broken = text.replace(
            "relation member: user | group#member", "relation member: usr | group#member"
        )
        assert broken != text
        schema.fill(broken)
        problems = page.get_by_test_id("problems")
        expect(problems).to_contain_text("schema, line 10")
        expect(problems).to_contain_text("usr")
        page.screenshot(path=screenshots / "playground-error.png")

        # The link to the problem puts the caret on that line.
        problems.get_by_role("link").first.click()
        expect(schema).to_be_focused()
        caret_line = schema.evaluate(
            "el => el.value.slice(0, el.selectionStart).split('\\n').length"
        )
        assert caret_line == 10

        schema.fill(text)
        expect(page.get_by_test_id("valid")).to_be_visible()
        expect(page.get_by_test_id("problems")).to_have_count(0)
        page.get_by_role("button", name="Validate").click()
        expect(page.locator("table.assertions tr.pass")).to_have_count(4)
        page.screenshot(path=screenshots / "playground.png", full_page=True)
    assert errors == []


def test_the_playground_works_without_javascript(browser_no_js: Page, console: Console) -> None:
    page = browser_no_js
    sign_in(page, console, console.keys.demo_reader)
    page.goto(f"{console.url}/playground")
    page.get_by_role("button", name="Load demo").click()
    schema = page.get_by_label("Schema")
    schema.fill(
        schema.input_value().replace(
            "permission view = viewer + edit + parent->view", "permission view = viewer + nope"
        )
    )
    page.get_by_role("button", name="Validate").click()
    expect(page.get_by_test_id("problems")).to_contain_text("schema, line")
    expect(page.get_by_test_id("problems")).to_contain_text("nope")


def test_why_alice_can_view_the_readme_is_a_graph_of_the_granting_path(
    page: Page, console: Console, screenshots: Path
) -> None:
    with console_errors(page) as errors:
        sign_in(page, console, console.keys.demo_reader)
        page.goto(f"{console.url}/playground")
        page.get_by_role("button", name="Load demo").click()
        expect(page.get_by_label("Resource")).to_have_value("document:readme")
        expect(page.get_by_label("Subject")).to_have_value("user:alice")
        page.get_by_role("button", name="Why?").click()
        answer = page.get_by_test_id("answer")
        expect(answer.get_by_test_id("decision")).to_have_text("ALLOWED")
        graph = answer.get_by_test_id("graph")
        expect(graph.locator("svg")).to_be_visible()
        # The granting path: alice owns the readme (a bold edge down to that relationship).
        expect(
            graph.locator("svg g.node.allowed", has_text="document:readme#owner@user:alice")
        ).to_have_count(1)
        expect(graph.locator("svg line.granting")).not_to_have_count(0)
        steps = answer.get_by_test_id("steps")
        expect(steps).to_contain_text("document:readme#view")
        expect(steps).to_contain_text("document:readme#owner@user:alice")
        graph.scroll_into_view_if_needed()
        page.screenshot(path=screenshots / "playground-why.png", full_page=True)
    assert errors == []
