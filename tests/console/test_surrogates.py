r"""A lone surrogate (`\ud800`, half of a UTF-16 pair) escaped in otherwise valid YAML or
JSON is no character: Python's parsers keep it in a str that nothing can encode as
UTF-8 (the page, a gRPC string). Every console form that parses YAML or JSON refuses it
where it is parsed, naming the part, instead of answering 500.

Each case is one form; the text holds the escape (six ASCII characters), as a browser
would send it."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from authz_service.console.questions import Question
from authz_service.credentials import Scope
from authz_service.demo import demo_relationships, demo_schema
from authz_service.unique_yaml import load_unique
from tests.console.harness import key, serving, sign_in

ESCAPE = "\\ud800"
QUESTION = {"resource": "document:readme", "permission": "view", "subject": "user:alice"}
CONTEXT = f'{{"user_ip": "{ESCAPE}"}}'


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client signed in with a platform key, and its CSRF token."""
    async with serving(tmp_path, demo=True) as (app, base):
        api_key = await key(app, scopes=(Scope.CHECK,))
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            yield http, await sign_in(http, api_key)


def _text(reply: httpx.Response) -> str:
    """The page's text, without its tags."""
    return html.unescape(re.sub(r"<[^>]+>", "", reply.text))


def _world(assertions: str, extra_relationship: str = "") -> dict[str, str]:
    relationships = "\n".join([*demo_relationships(), extra_relationship])
    return {"schema": demo_schema(), "relationships": relationships, "assertions": assertions}


# (form, path, how it is sent, status, what the answer says)
POSTED: list[tuple[str, str, dict[str, Any], int, str]] = [
    (
        "import: a string",
        "/playground/import",
        {"files": {"file": ("x.yaml", f'schema: "{ESCAPE}"\n'.encode())}},
        400,
        f"the file is not valid YAML at line 1, column 9: a string holds `{ESCAPE}`",
    ),
    (
        "import: a key",
        "/playground/import",
        {"files": {"file": ("x.yaml", f'schema: ""\nassertions:\n  "{ESCAPE}": []\n'.encode())}},
        400,
        f"the file is not valid YAML at line 3, column 3: a string holds `{ESCAPE}`",
    ),
    (
        "validate: an assertion",
        "/playground/validate",
        {"data": _world(f'assertTrue:\n  - "document:readme#view@user:{ESCAPE}"\n')},
        200,
        f"assertions, line 2, column 5: not valid YAML: a string holds `{ESCAPE}`",
    ),
    (
        "validate: an assertion's context",
        "/playground/validate",
        {"data": _world(f"assertTrue:\n  - 'document:readme#view@user:alice with {CONTEXT}'\n")},
        200,
        f"assertions, line 2: context holds `{ESCAPE}`, a lone surrogate",
    ),
    (
        "validate: a relationship's caveat context",
        "/playground/validate",
        {"data": _world("", f"document:readme#viewer@user:zed[ip_allowlist:{CONTEXT}]")},
        200,
        f"caveat context holds `{ESCAPE}`, a lone surrogate",
    ),
    (
        "export: the assertions",
        "/playground/export",
        {"data": _world(f'assertTrue:\n  - "{ESCAPE}"\n')},
        400,
        "assertions are not valid YAML",
    ),
    (
        "ask: in memory",
        "/playground/ask",
        {"data": {**_world(""), **QUESTION, "action": "check", "context": CONTEXT}},
        200,
        f"context holds `{ESCAPE}`, a lone surrogate",
    ),
    (
        "ask: a tenant",
        "/playground/ask",
        {"data": {**QUESTION, "tenant": "demo", "action": "check", "context": CONTEXT}},
        200,
        f"context holds `{ESCAPE}`, a lone surrogate",
    ),
]


@pytest.mark.parametrize(
    ("path", "sent", "status", "says"), [case[1:] for case in POSTED], ids=[c[0] for c in POSTED]
)
async def test_a_lone_surrogate_in_a_form_is_refused_naming_the_part(
    console: tuple[httpx.AsyncClient, str], path: str, sent: dict[str, Any], status: int, says: str
) -> None:
    http, csrf = console
    sent = {**sent, "data": {**sent.get("data", {}), "csrf": csrf}}
    reply = await http.post(path, **sent)
    assert reply.status_code == status, reply.text[:300]
    assert says in _text(reply)


async def test_a_lone_surrogate_in_the_why_pages_context_is_refused(
    console: tuple[httpx.AsyncClient, str],
) -> None:
    http, _ = console
    reply = await http.get("/why", params={"tenant": "demo", **QUESTION, "context": CONTEXT})
    assert reply.status_code == 200
    assert f"context holds `{ESCAPE}`, a lone surrogate" in _text(reply)


def test_a_surrogate_pair_is_one_character_and_accepted() -> None:
    assert load_unique('a: "\\ud83d\\ude00"') == {"a": "\U0001f600"}
    context = Question.from_form({"context": '{"a": "\\ud83d\\ude00"}'}).context
    assert context == {"a": "\U0001f600"}
