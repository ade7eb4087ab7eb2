"""The Audit page in a real browser, against a real server on PostgreSQL: decisions made
through the gRPC API are found, verified and replayed through the page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from playwright.sync_api import Page, expect

from authz_service.api.gen.authz.v1 import (
    core_pb2,
    permissions_pb2,
    permissions_pb2_grpc,
    schema_pb2,
    schema_pb2_grpc,
)
from tests.console.conftest import Console, console_errors, sign_in

# The demo schema with documents no longer viewable through `edit` or their folder.
VIEW = "permission view = (viewer + edit + folder->view) - banned"
NARROWED = "permission view = viewer - banned"


@pytest.fixture
def channel(console: Console) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{console.grpc_port}") as opened:
        yield opened


def _check(
    channel: grpc.Channel, key: str, resource: str, permission: str, subject: str
) -> permissions_pb2.CheckResponse:
    kind, _, ident = resource.partition(":")
    who, _, name = subject.partition(":")
    request = permissions_pb2.CheckRequest(
        tenant="demo",
        resource=core_pb2.ObjectReference(object_type=kind, object_id=ident),
        permission=permission,
        subject=core_pb2.SubjectReference(
            object=core_pb2.ObjectReference(object_type=who, object_id=name)
        ),
    )
    request.consistency.fully_consistent = True
    stub = permissions_pb2_grpc.PermissionsServiceStub(channel)
    reply: permissions_pb2.CheckResponse = stub.Check(
        request, metadata=(("authorization", f"Bearer {key}"),), timeout=10
    )
    return reply


def _open(page: Page, console: Console) -> None:
    sign_in(page, console, console.keys.demo_admin)
    page.get_by_role("navigation").get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit", exact=True)).to_be_visible()


def test_query_decisions_by_subject_and_outcome(
    page: Page, console: Console, channel: grpc.Channel, screenshots: Path
) -> None:
    key = console.keys.demo_admin
    denied = _check(channel, key, "document:roadmap", "view", "user:bob")  # banned
    allowed = _check(channel, key, "document:readme", "view", "user:bob")  # via eng
    assert (denied.decision, allowed.decision) == (
        core_pb2.DECISION_DENIED,
        core_pb2.DECISION_ALLOWED,
    )
    with console_errors(page) as errors:
        _open(page, console)
        query = page.get_by_role("region", name="Decisions")
        query.get_by_label("Subject").fill("user:bob")
        query.get_by_label("Outcome").select_option("denied")
        query.get_by_role("button", name="Query").click()
        records = page.get_by_test_id("records")
        row = records.get_by_role("row").filter(has_text=denied.decision_id)
        expect(row).to_contain_text("document:roadmap")
        expect(row).to_contain_text("denied")
        expect(records).not_to_contain_text(allowed.decision_id)
        expect(records.locator("td.allowed")).to_have_count(0)
        page.screenshot(path=screenshots / "audit-query.png", full_page=True)

        query.get_by_label("Outcome").select_option("allowed")
        query.get_by_role("button", name="Query").click()
        expect(records).to_contain_text(allowed.decision_id)
        expect(records).not_to_contain_text(denied.decision_id)

        # Each decision id leads to the Why page's view of the logged decision.
        records.get_by_role("link", name=allowed.decision_id).click()
        expect(page).to_have_url(re.compile(f"/why\\?.*decision_id={allowed.decision_id}"))
        expect(page.get_by_role("main")).to_contain_text(allowed.decision_id)

        # A time range after every decision finds none.
        page.goto(f"{console.url}/audit")
        query = page.get_by_role("region", name="Decisions")
        query.get_by_label("From").fill("2099-01-01T00:00:00")
        query.get_by_role("button", name="Query").click()
        expect(page.get_by_test_id("records")).to_contain_text("No decisions match.")
    assert errors == []


def test_verify_shows_the_result_per_stream(
    page: Page, console: Console, channel: grpc.Channel, screenshots: Path
) -> None:
    _check(channel, console.keys.demo_admin, "document:readme", "view", "user:alice")
    _open(page, console)
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_test_id("verified")).to_contain_text("Verified:")
    streams = page.get_by_test_id("streams")
    expect(streams.get_by_role("row").filter(has_text="demo")).to_contain_text("OK")
    expect(streams.locator("td.error")).to_have_count(0)
    page.screenshot(path=screenshots / "audit-verify.png", full_page=True)


def test_replay_shows_no_difference_then_the_difference_a_schema_change_makes(
    page: Page, console: Console, channel: grpc.Channel, screenshots: Path
) -> None:
    made = _check(channel, console.keys.demo_admin, "document:readme", "view", "user:alice")
    assert made.decision == core_pb2.DECISION_ALLOWED  # alice owns it: view via edit
    _open(page, console)
    replay = page.get_by_role("region", name="Replay")
    replay.get_by_label("Subject").fill("user:alice")
    replay.get_by_label("Resource").fill("document:readme")
    replay.get_by_role("button", name="Replay").click()
    summary = page.get_by_test_id("replay-summary")
    expect(summary).to_contain_text(re.compile(r"[1-9]\d* replayed, 0 differ, 0 could not"))
    expect(page.get_by_test_id("differences")).to_have_count(0)
    replayed = int((summary.text_content() or "").split()[0])

    # A narrower schema version: what would it have changed? (The current schema is put
    # back afterwards: the server is shared by the other console tests.)
    schema = schema_pb2_grpc.SchemaServiceStub(channel)
    platform = (("authorization", f"Bearer {console.keys.platform}"),)
    current = schema.ReadSchema(schema_pb2.ReadSchemaRequest(), metadata=platform, timeout=10)
    assert VIEW in current.schema
    narrowed = schema.WriteSchema(
        schema_pb2.WriteSchemaRequest(schema=current.schema.replace(VIEW, NARROWED), force=True),
        metadata=platform,
        timeout=10,
    )
    try:
        replay = page.get_by_role("region", name="Replay")
        replay.get_by_label("Schema version").fill(narrowed.schema_version)
        replay.get_by_role("button", name="Replay").click()
        expect(summary).to_contain_text(f"{replayed} replayed, ")
        differ = int((summary.text_content() or "").split(", ")[1].split()[0])
        assert differ >= 1
        row = (
            page.get_by_test_id("differences").get_by_role("row").filter(has_text=made.decision_id)
        )
        expect(row).to_contain_text("allowed")
        expect(row).to_contain_text("denied")
        expect(row).to_contain_text("no relationship `document:readme#viewer`")
        page.screenshot(path=screenshots / "audit-replay.png", full_page=True)
    finally:
        restored = schema.WriteSchema(
            schema_pb2.WriteSchemaRequest(schema=current.schema, force=True),
            metadata=platform,
            timeout=10,
        )
        assert restored.schema_version == current.schema_version

    # Bad input is named by the server, and nothing is replayed.
    replay = page.get_by_role("region", name="Replay")
    replay.get_by_label("Schema version").fill("0123456789abcdef")
    replay.get_by_role("button", name="Replay").click()
    expect(page.get_by_test_id("error")).to_contain_text("NOT_FOUND")
    expect(page.get_by_test_id("replay-summary")).to_have_count(0)


def test_a_key_without_audit_sees_no_audit_page(page: Page, console: Console) -> None:
    sign_in(page, console, console.keys.demo_reader)
    nav = page.get_by_role("navigation")
    expect(nav.get_by_role("link", name="Audit")).to_have_count(0)
    shown = page.goto(f"{console.url}/audit")
    assert shown is not None
    assert shown.status == 403
    expect(page.get_by_role("main")).to_contain_text("needs the `audit` scope")
    page.goto(f"{console.url}/playground")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf
    for action in ("verify", "replay"):
        response = page.request.post(f"{console.url}/audit/{action}", form={"csrf": csrf})
        assert response.status == 403, action
