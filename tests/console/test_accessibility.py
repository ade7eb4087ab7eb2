"""Every console page is usable by keyboard and every control has a name."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import Console, sign_in

_UNNAMED = """els => els
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
               && !(e.tagName === 'BUTTON' && e.textContent.trim()))
  .map(e => e.outerHTML.slice(0, 120))"""


@pytest.mark.parametrize(
    "path",
    ["/", "/playground", "/why", "/tenant?tenant=demo&subject=user:carol", "/audit"],
)
def test_every_control_has_a_label(page: Page, console: Console, path: str) -> None:
    sign_in(page, console, console.keys.platform)
    page.goto(f"{console.url}{path}")
    controls = page.locator("input:not([type=hidden]), textarea, select, button")
    expect(controls.first).to_be_attached()
    assert controls.evaluate_all(_UNNAMED) == []


def test_the_keyboard_reaches_the_content_first(page: Page, console: Console) -> None:
    sign_in(page, console, console.keys.demo_reader)
    page.goto(f"{console.url}/playground")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Load demo")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("valid")).to_be_visible()
