"""Playground: a schema, relationships and assertions side by side (the three parts of a
validation file), validated as you type, evaluated in memory."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from authz_service.console import sandbox
from authz_service.console.page import Ctx, Page, PageRoute
from authz_service.credentials import Scope
from authz_service.demo import demo_relationships, demo_schema

__all__ = ["PAGE"]

DEMO_ASSERTIONS = """assertTrue:
  - document:readme#view@user:alice
  - document:readme#view@user:carol
assertFalse:
  - document:roadmap#view@user:bob
assertCaveated:
  - document:vpn-guide#view@user:dave
"""


def _texts(ctx: Ctx) -> dict[str, str]:
    return {
        "schema": ctx.field("schema"),
        "relationships": ctx.field("relationships"),
        "assertions": ctx.field("assertions"),
    }


async def _show(ctx: Ctx, texts: dict[str, str], *, evaluate: bool) -> Response:
    world = sandbox.build(texts["schema"], texts["relationships"], texts["assertions"])
    results = await world.run_assertions() if evaluate and world.ok else []
    values: dict[str, Any] = {
        "texts": texts,
        "world": world,
        "results": results,
        "evaluated": evaluate,
    }
    if ctx.htmx:
        return ctx.render("playground_result.html", **values)
    return ctx.render("playground.html", **values)


async def show(ctx: Ctx) -> Response:
    return ctx.render(
        "playground.html",
        texts={"schema": "", "relationships": "", "assertions": ""},
        world=None,
        results=[],
        evaluated=False,
    )


async def validate(ctx: Ctx) -> Response:
    return await _show(ctx, _texts(ctx), evaluate=True)


async def demo(ctx: Ctx) -> Response:
    texts = {
        "schema": demo_schema(),
        "relationships": "\n".join(demo_relationships()) + "\n",
        "assertions": DEMO_ASSERTIONS,
    }
    # A whole page even under htmx: the three editors change, not only the results.
    return ctx.render(
        "playground.html",
        texts=texts,
        world=sandbox.build(texts["schema"], texts["relationships"], texts["assertions"]),
        results=[],
        evaluated=False,
    )


PAGE = Page(
    slug="playground",
    title="Playground",
    summary="Write a schema, relationships and assertions; validate and ask questions in memory.",
    needs=Scope.CHECK,
    routes=(
        PageRoute("", show),
        PageRoute("/validate", validate, methods=("POST",)),
        PageRoute("/demo", demo, methods=("POST",)),
    ),
)
