"""Browser tests of the console: `authz serve --console` as a separate process on a fresh
PostgreSQL database, driven by Playwright through the system's Chromium.

Chromium is found at AUTHZ_CHROMIUM, else /usr/bin/chromium, else `chromium` on PATH
(Debian: `apt-get install chromium`; `.ci/run` installs it). Playwright never downloads
a browser here. Without Chromium the tests fail in CI (CI=true) and are skipped, with
the reason, elsewhere.

Screenshots go to AUTHZ_CONSOLE_SCREENSHOTS when set (docs/console.md regenerates
docs/console/ that way), else to a temporary directory, so a test run leaves the tree
clean.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from authz_service.credentials import ApiKey, Scope, new_key
from authz_service.decisionlog import generate_keypair
from tests.pg import FreshDatabase, run_aside

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90
ALL = frozenset({Scope.CHECK, Scope.WRITE, Scope.ADMIN, Scope.AUDIT})

# Assertions wait for their condition up to this long (Playwright's default is 5 s): CI
# machines are shared, and a loaded one may take seconds to answer a page.
expect.set_options(timeout=20_000)


def chromium_path() -> str | None:
    for candidate in (os.environ.get("AUTHZ_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("chromium")


@dataclass(frozen=True)
class Keys:
    platform: str  # every scope, all tenants
    demo_reader: str  # check only, tenant demo: the read-only pages
    demo_admin: str  # check, write, audit on tenant demo


@dataclass(frozen=True)
class Console:
    url: str  # http://127.0.0.1:PORT
    grpc_port: int
    keys: Keys
    dsn: str


def _key(tenant: str, scopes: frozenset[Scope], name: str) -> tuple[ApiKey, str]:
    return new_key(tenant=tenant, scopes=scopes, name=name)


async def _store_keys(dsn: str, records: list[ApiKey]) -> None:
    from authz_service.store import postgres

    store = await postgres.connect(dsn, min_size=1, max_size=2)
    try:
        await store.tenants.create("demo")
        for record in records:
            await store.keys.create(record)
    finally:
        await store.close()


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHZ_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.fixture(scope="session")
def console() -> Iterator[Console]:
    """A real server with the demo model and the console, on its own database."""
    database = FreshDatabase()
    dsn = run_aside(database.__aenter__())
    try:
        platform = _key("*", ALL, "console tests: platform")
        reader = _key("demo", frozenset({Scope.CHECK}), "console tests: reader")
        admin = _key("demo", frozenset({Scope.CHECK, Scope.WRITE, Scope.AUDIT}), "console tests")
        run_aside(_store_keys(dsn, [platform[0], reader[0], admin[0]]))
        with tempfile.TemporaryDirectory(prefix="authz-console-") as data:
            # Signed checkpoints, so that the Audit page's Verify has a key to check.
            signing_key, _ = generate_keypair(Path(data) / "keys")
            proc = subprocess.Popen(
                [
                    sys.executable, "-m", "authz_service", "serve", "--demo",
                    "--database-url", dsn, "--data-dir", data, "--no-migrate",
                    "--listen", "127.0.0.1:0", "--console", "127.0.0.1:0",
                    "--decision-log", "durable", "--signing-key", str(signing_key),
                ],
                cwd=data, env=_environment(), text=True,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            try:
                yield _started(proc, dsn, Keys(platform[1], reader[1], admin[1]))
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    finally:
        run_aside(database.__aexit__(None, None, None))


def _started(proc: subprocess.Popen[str], dsn: str, keys: Keys) -> Console:
    """The console's address, read from the two lines `authz serve` prints once up."""
    assert proc.stdout is not None
    lines = []
    for _ in range(2):
        line = proc.stdout.readline()  # the process prints them once listening, or dies
        lines.append(line)
    text = "".join(lines)
    grpc_port = re.search(r"listening on [0-9.]+:(\d+)", text)
    url = re.search(r"console at (http://[0-9.]+:\d+)/", text)
    if grpc_port is None or url is None:
        proc.kill()
        assert proc.stderr is not None
        raise AssertionError(f"server did not start: {text!r}\n{proc.stderr.read()[-3000:]}")
    return Console(url.group(1), int(grpc_port.group(1)), keys, dsn)


# Per module, not per session: Playwright's sync API keeps an event loop running in this
# thread while it is open, which the async tests of later modules would trip over.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        message = "Chromium not found: apt-get install chromium, or set AUTHZ_CHROMIUM"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshots() -> Iterator[Path]:
    configured = os.environ.get("AUTHZ_CONSOLE_SCREENSHOTS")
    if configured:
        folder = Path(configured)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="authz-console-shots-") as folder:
        yield Path(folder)


def sign_in(page: Page, console: Console, key: str) -> None:
    page.goto(f"{console.url}/login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("viewer")).to_contain_text("key ")


@contextlib.contextmanager
def console_errors(page: Page) -> Iterator[list[str]]:
    """Collects the page's console errors (a CSP refusal, a script error) for asserting."""
    errors: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", note)
    try:
        yield errors
    finally:
        page.remove_listener("console", note)


@pytest.fixture
def browser_no_js(browser: Browser) -> Iterator[Page]:
    """A page with JavaScript off: the console's forms must work without it."""
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1400, "height": 900}
    )
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()
