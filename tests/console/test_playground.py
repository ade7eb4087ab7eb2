"""The playground in a real browser, against a real server on PostgreSQL."""

from __future__ import annotations

import re
import subprocess
import sys
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
        expect(problems.locator("pre.excerpt")).to_contain_text("10 |     relation member: usr")
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

        # And why alice can view the readme, as a graph.
        page.get_by_role("button", name="Why?").click()
        graph = page.get_by_test_id("answer").get_by_test_id("graph")
        expect(
            graph.locator("svg g.node.allowed", has_text="document:readme#view")
        ).not_to_have_count(0)
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


def _ask(page: Page, action: str, **fields: str) -> None:
    ask = page.get_by_role("group", name="Ask")
    for label, value in fields.items():
        ask.get_by_label(label.capitalize()).fill(value)
    ask.get_by_role("button", name=action, exact=True).click()


def test_lookups_and_permissions_in_memory(page: Page, console: Console) -> None:
    sign_in(page, console, console.keys.demo_reader)
    page.goto(f"{console.url}/playground")
    page.get_by_role("button", name="Load demo").click()
    rows = page.get_by_test_id("answer").get_by_test_id("rows")

    _ask(page, "List permissions", resource="document:readme", subject="user:alice")
    expect(rows.locator("tr.allowed")).to_have_count(3)  # edit, view, delete

    _ask(page, "Lookup resources", resource="document", permission="view", subject="user:carol")
    expect(rows).to_contain_text("document:readme")
    expect(rows).to_contain_text("document:roadmap")

    _ask(page, "Lookup subjects", resource="document:roadmap", permission="view", subject="user")
    expect(rows).to_contain_text("user:carol")
    expect(rows).to_contain_text("user:alice")
    expect(rows).not_to_contain_text("user:bob")  # banned

    _ask(page, "Check", resource="document:readme", permission="view", subject="user:nobody")
    expect(page.get_by_test_id("answer").get_by_test_id("decision")).to_have_text("DENIED")

    _ask(page, "Check", context="[1, 2]")
    expect(page.get_by_role("alert")).to_contain_text("context must be a JSON object")


def test_questions_to_a_tenant_go_through_the_api_with_the_viewers_key(
    page: Page, console: Console
) -> None:
    sign_in(page, console, console.keys.demo_reader)
    page.goto(f"{console.url}/playground")
    # No editors filled in: the tenant's own schema and data answer.
    _ask(
        page,
        "Check",
        resource="document:readme",
        permission="view",
        subject="user:alice",
        tenant="demo",
    )
    answer = page.get_by_test_id("answer")
    expect(answer).to_contain_text("tenant demo")
    expect(answer.get_by_test_id("decision")).to_have_text("ALLOWED")
    expect(answer.get_by_test_id("decision-id")).to_have_text(re.compile(r"^[0-9A-Z]{26}$"))

    _ask(page, "Lookup resources", resource="document", tenant="demo")
    expect(answer.get_by_test_id("rows")).to_contain_text("document:readme")

    # The key is bound to `demo`: the server refuses another tenant.
    _ask(page, "Check", resource="document:readme", tenant="globex")
    expect(answer.get_by_role("alert")).to_contain_text("PERMISSION_DENIED")


def test_export_then_import_a_validation_file(page: Page, console: Console, tmp_path: Path) -> None:
    sign_in(page, console, console.keys.demo_reader)
    page.goto(f"{console.url}/playground")
    page.get_by_role("button", name="Load demo").click()
    with page.expect_download() as download:
        page.get_by_role("button", name="Export").click()
    exported = tmp_path / "playground.yaml"
    download.value.save_as(exported)
    text = exported.read_text()
    assert text.startswith("schema: |")
    assert "document:readme#owner@user:alice" in text
    assert "assertTrue:" in text
    validated = subprocess.run(
        [sys.executable, "-m", "authz_service", "validate", str(exported)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr

    page.goto(f"{console.url}/playground")
    expect(page.get_by_label("Schema")).to_have_value("")
    page.get_by_label("Validation file").set_input_files(exported)
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_label("Schema")).to_have_value(re.compile("definition document"))
    expect(page.locator("table.assertions tr.pass")).to_have_count(4)

    broken = tmp_path / "broken.yaml"
    broken.write_text("schema: [unclosed\n")
    page.get_by_label("Validation file").set_input_files(broken)
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_test_id("form-error")).to_contain_text("not valid YAML at line")


def test_load_a_tenants_schema_and_relationships_into_the_editors(
    page: Page, console: Console
) -> None:
    sign_in(page, console, console.keys.demo_admin)
    page.goto(f"{console.url}/playground")
    page.get_by_role("group", name="Ask").get_by_label("Tenant").fill("demo")
    page.get_by_role("button", name="Load from tenant").click()
    expect(page.get_by_label("Schema")).to_have_value(re.compile("definition document"))
    expect(page.get_by_label("Relationships")).to_have_value(
        re.compile(r"document:readme#owner@user:alice")
    )
    expect(page.get_by_test_id("valid")).to_contain_text("relationships")


def test_a_check_only_key_loads_the_schema_but_not_the_relationships(
    page: Page, console: Console
) -> None:
    sign_in(page, console, console.keys.demo_reader)
    page.goto(f"{console.url}/playground")
    page.get_by_role("button", name="Load from tenant").click()  # its own tenant: demo
    expect(page.get_by_label("Schema")).to_have_value(re.compile("definition document"))
    expect(page.get_by_label("Relationships")).to_have_value("")
    expect(page.get_by_test_id("notice")).to_contain_text("`write` scope")
