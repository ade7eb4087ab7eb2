"""The Tenant admin page in a real browser, against a real server on PostgreSQL.

The server is shared by every console test module, so these tests use subjects and
roles of their own (`user:erin`, `user:mallory`, `console-reader`), never the demo's.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.console.conftest import Console, console_errors, sign_in


def _open(page: Page, console: Console) -> None:
    sign_in(page, console, console.keys.demo_admin)
    page.get_by_role("navigation").get_by_role("link", name="Tenant admin").click()
    expect(page.get_by_role("heading", name="Tenant admin")).to_be_visible()


def _propose(page: Page, role: str, subject: str, resource: str) -> None:
    page.get_by_label("Role", exact=True).fill(role)
    page.get_by_label("Subject (user:erin").fill(subject)
    page.get_by_label("Resource (empty").fill(resource)
    page.get_by_role("button", name="Preview reach").click()


def test_preview_a_bindings_reach_then_create_it(
    page: Page, console: Console, screenshots: Path
) -> None:
    with console_errors(page) as errors:
        _open(page, console)
        page.get_by_label("Name", exact=True).fill("console-reader")
        page.get_by_label("Description", exact=True).fill("reads folders and their documents")
        page.get_by_label("Permissions (document.view").fill("folder.view document.view")
        page.get_by_role("button", name="Create role").click()
        expect(page.get_by_test_id("notice")).to_have_text("Role console-reader created.")
        roles = page.get_by_test_id("roles")
        expect(roles.get_by_role("row").filter(has_text="console-reader")).to_contain_text(
            "document.view folder.view"
        )

        # The reach first: what the binding would open, before it exists.
        _propose(page, "console-reader", "user:erin", "folder:handbook")
        reach = page.get_by_test_id("reach")
        expect(reach.get_by_role("row").filter(has_text="folder:handbook")).to_contain_text("view")
        expect(page.get_by_test_id("reach-summary")).to_contain_text("Would grant")
        expect(page.get_by_test_id("bindings")).not_to_contain_text("user:erin")
        page.screenshot(path=screenshots / "tenant-reach.png", full_page=True)

        page.get_by_role("button", name="Create this binding").click()
        expect(page.get_by_test_id("notice")).to_contain_text("created")
        row = page.get_by_test_id("bindings").get_by_role("row").filter(has_text="user:erin")
        expect(row).to_contain_text("console-reader")
        expect(row).to_contain_text("folder:handbook")

        # A duplicate is refused by the server, and the page says why.
        _propose(page, "console-reader", "user:erin", "folder:handbook")
        page.get_by_role("button", name="Create this binding").click()
        expect(page.get_by_test_id("error")).to_contain_text("ALREADY_EXISTS")

        # Deleting the role needs `cascade` while it is bound.
        page.get_by_text("Edit console-reader").click()
        page.get_by_role("button", name="Delete console-reader").click()
        expect(page.get_by_test_id("error")).to_contain_text("FAILED_PRECONDITION")
        page.get_by_text("Edit console-reader").click()
        page.get_by_label("also delete its bindings").check()
        page.get_by_role("button", name="Delete console-reader").click()
        expect(page.get_by_test_id("notice")).to_have_text(
            "Role console-reader deleted with 1 bindings."
        )
        expect(page.get_by_test_id("bindings")).not_to_contain_text("user:erin")
    # Refused changes come back as 400 pages (the browser notes them); nothing else.
    assert [e for e in errors if "status of 400" not in e] == []


def test_a_role_is_updated_and_bad_permissions_are_named(page: Page, console: Console) -> None:
    _open(page, console)
    page.get_by_label("Name", exact=True).fill("console-editor")
    page.get_by_label("Permissions (document.view").fill("document.edit")
    page.get_by_role("button", name="Create role").click()
    expect(page.get_by_test_id("notice")).to_have_text("Role console-editor created.")

    page.get_by_text("Edit console-editor").click()
    page.get_by_label("Permissions", exact=True).fill("document.edit document.nope")
    page.get_by_role("button", name="Update console-editor").click()
    expect(page.get_by_test_id("error")).to_contain_text("INVALID_ARGUMENT")
    expect(page.get_by_test_id("error")).to_contain_text("nope")

    page.get_by_text("Edit console-editor").click()
    page.get_by_label("Permissions", exact=True).fill("document.edit document.view")
    page.get_by_role("button", name="Update console-editor").click()
    expect(page.get_by_test_id("notice")).to_have_text("Role console-editor updated.")
    row = page.get_by_test_id("roles").get_by_role("row").filter(has_text="console-editor")
    expect(row).to_contain_text("document.edit document.view")
    page.get_by_text("Edit console-editor").click()
    page.get_by_role("button", name="Delete console-editor").click()
    expect(page.get_by_test_id("notice")).to_have_text("Role console-editor deleted.")


def test_suspend_and_reactivate_a_subject_with_a_reason(
    page: Page, console: Console, screenshots: Path
) -> None:
    _open(page, console)
    page.get_by_label("Subject (user:bob)").fill("user:mallory")
    page.get_by_role("button", name="Look up").click()
    expect(page.get_by_test_id("status")).to_have_text("active")

    page.get_by_label("Reason (required").fill("laptop stolen, ticket 99")
    page.get_by_role("button", name="Suspend").click()
    expect(page.get_by_test_id("notice")).to_have_text("user:mallory suspended.")
    expect(page.get_by_test_id("status")).to_have_text("suspended")
    expect(page.get_by_test_id("subject-status")).to_contain_text("laptop stolen, ticket 99")
    page.screenshot(path=screenshots / "tenant-subject.png", full_page=True)

    # Without a reason the server is not even asked (the browser requires it too).
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    refused = page.request.post(
        f"{console.url}/tenant/subject/reactivate",
        form={"csrf": csrf or "", "subject": "user:mallory", "reason": " "},
    )
    assert refused.status == 400
    assert "a reason is required" in refused.text()

    page.get_by_label("Reason (required").fill("laptop found")
    page.get_by_role("button", name="Reactivate").click()
    expect(page.get_by_test_id("status")).to_have_text("active")


def test_scim_sync_status_and_a_repair_with_nothing_to_do(page: Page, console: Console) -> None:
    _open(page, console)
    page.get_by_role("button", name="Check SCIM sync").click()
    expect(page.get_by_test_id("scim-status")).to_contain_text("0 active")
    expect(page.get_by_test_id("scim-drift")).to_contain_text("No drift")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    repaired = page.request.post(
        f"{console.url}/tenant/scim/repair", form={"csrf": csrf or "", "reason": "audit day"}
    )
    assert repaired.status == 200
    assert "Nothing to repair." in repaired.text()
    unexplained = page.request.post(
        f"{console.url}/tenant/scim/repair", form={"csrf": csrf or "", "reason": ""}
    )
    assert unexplained.status == 400
    assert "a reason is required" in unexplained.text()


def test_a_key_without_write_sees_no_tenant_admin_and_its_posts_are_refused(
    page: Page, console: Console
) -> None:
    sign_in(page, console, console.keys.demo_reader)
    expect(page.get_by_role("navigation").get_by_role("link", name="Tenant admin")).to_have_count(0)
    shown = page.goto(f"{console.url}/tenant")
    assert shown is not None
    assert shown.status == 403
    expect(page.get_by_role("main")).to_contain_text("needs the `write` scope")

    page.goto(f"{console.url}/playground")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf
    for action, form in (
        ("roles/create", {"name": "sneaky", "permissions": "document.view"}),
        ("bindings/create", {"role": "sneaky", "subject": "user:eve"}),
        ("subject/suspend", {"subject": "user:alice", "reason": "because"}),
    ):
        response = page.request.post(f"{console.url}/tenant/{action}", form={"csrf": csrf, **form})
        assert response.status == 403, action
        assert "write" in response.text()


def test_reach_then_create_works_without_javascript(browser_no_js: Page, console: Console) -> None:
    page = browser_no_js
    sign_in(page, console, console.keys.demo_admin)
    page.goto(f"{console.url}/tenant")
    page.get_by_label("Name", exact=True).fill("console-nojs")
    page.get_by_label("Permissions (document.view").fill("document.view")
    page.get_by_role("button", name="Create role").click()
    expect(page.get_by_test_id("notice")).to_have_text("Role console-nojs created.")
    _propose(page, "console-nojs", "user:nojs", "")
    expect(page.get_by_role("heading", name=re.compile("Reach of console-nojs"))).to_contain_text(
        "tenant-wide"
    )
    expect(page.get_by_test_id("reach-summary")).to_contain_text("Would grant")
    page.get_by_role("button", name="Create this binding").click()
    row = page.get_by_test_id("bindings").get_by_role("row").filter(has_text="user:nojs")
    expect(row).to_contain_text("tenant-wide")
    row.get_by_role("button", name=re.compile("Delete binding")).click()
    expect(page.get_by_test_id("bindings")).not_to_contain_text("user:nojs")
    page.get_by_text("Edit console-nojs").click()
    page.get_by_role("button", name="Delete console-nojs").click()
    expect(page.get_by_test_id("notice")).to_have_text("Role console-nojs deleted.")
