"""Playground: a schema, relationships and assertions side by side (the three parts of a
validation file), validated as you type and evaluated in memory; questions (Check, Why,
ListPermissions, lookups) asked of that in-memory world or, with a tenant named, of the
tenant through the API with the viewer's key. Import and export a validation file.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from starlette.responses import Response

from authz_service.api import convert
from authz_service.api.gen.authz.v1 import relationships_pb2, schema_pb2
from authz_service.console import sandbox
from authz_service.console.backend import CALL_TIMEOUT_S, call_error
from authz_service.console.files import export_file, import_file
from authz_service.console.page import Ctx, Page, PageRoute
from authz_service.console.questions import ACTIONS, Answer, Question, ask_memory, ask_tenant
from authz_service.credentials import Scope
from authz_service.demo import DEMO_TENANT, demo_relationships, demo_schema
from authz_service.errors import AuthzError, DeadlineExceeded, InvalidArgument

__all__ = ["PAGE"]

DEMO_ASSERTIONS = """assertTrue:
  - document:readme#view@user:alice
  - document:readme#view@user:carol
assertFalse:
  - document:roadmap#view@user:bob
assertCaveated:
  - document:vpn-guide#view@user:dave
"""
DEMO_QUESTION = {
    "resource": "document:readme",
    "permission": "view",
    "subject": "user:alice",
    "context": "",
    "tenant": "",
}
_EMPTY = {"schema": "", "relationships": "", "assertions": ""}
_QUESTION_FIELDS = ("resource", "permission", "subject", "context", "tenant")


def _texts(ctx: Ctx) -> dict[str, str]:
    return {name: ctx.field(name) for name in _EMPTY}


def _asked(ctx: Ctx) -> dict[str, str]:
    return {name: ctx.field(name) for name in _QUESTION_FIELDS}


async def _page(
    ctx: Ctx,
    texts: dict[str, str],
    *,
    asked: dict[str, str] | None = None,
    evaluate: bool = False,
    answer: Answer | None = None,
    error: str = "",
    notice: str = "",
    fragment: str = "",
    status_code: int = 200,
) -> Response:
    """The whole page, or under htmx the one `fragment` that changed."""
    world: sandbox.World | None = None
    results: list[sandbox.AssertionResult] = []
    stopped = ""
    try:
        async with ctx.backend.playground.spend(ctx.viewer.tenant):
            world = await _built(texts)
            results = await world.run_assertions() if evaluate and world.ok else []
    except DeadlineExceeded as exc:
        world, results, stopped = None, [], exc.message
    values: dict[str, Any] = {
        "texts": texts,
        "asked": asked or DEMO_QUESTION,
        "world": world,
        "results": results,
        "stopped": stopped,
        "answer": answer,
        "error": error,
        "notice": notice,
        "actions": ACTIONS,
        "demo_tenant": DEMO_TENANT,
    }
    template = f"playground_{fragment}.html" if ctx.htmx and fragment else "playground.html"
    return ctx.render(template, status_code=status_code, **values)


async def _built(texts: dict[str, str]) -> sandbox.World:
    """The world, built in a worker thread: compiling a schema and parsing up to 1 MiB
    of text is pure Python, which lets the event loop run meanwhile."""
    return await asyncio.to_thread(
        sandbox.build, texts["schema"], texts["relationships"], texts["assertions"]
    )


async def show(ctx: Ctx) -> Response:
    return await _page(ctx, dict(_EMPTY))


async def validate(ctx: Ctx) -> Response:
    return await _page(ctx, _texts(ctx), asked=_asked(ctx), evaluate=True, fragment="result")


async def ask(ctx: Ctx) -> Response:
    texts = _texts(ctx)
    asked = _asked(ctx)
    try:
        question = Question.from_form({**asked, "action": ctx.field("action", "check")})
    except InvalidArgument as exc:
        return await _page(ctx, texts, asked=asked, error=exc.message, fragment="answer")
    tenant = asked["tenant"].strip()
    if tenant:
        answer = await ask_tenant(ctx.backend, ctx.metadata, tenant, question)
    else:
        answer = await _ask_world(ctx, texts, question)
    return await _page(ctx, texts, asked=asked, answer=answer, fragment="answer")


async def _ask_world(ctx: Ctx, texts: dict[str, str], question: Question) -> Answer:
    try:
        async with ctx.backend.playground.spend(ctx.viewer.tenant):
            world = await _built(texts)
            if not world.ok:
                return Answer(question, "in memory", error="fix the problems above first")
            return await ask_memory(world, question)
    except DeadlineExceeded as exc:
        return Answer(question, "in memory", error=exc.message)


async def demo(ctx: Ctx) -> Response:
    texts = {
        "schema": demo_schema(),
        "relationships": "\n".join(demo_relationships()) + "\n",
        "assertions": DEMO_ASSERTIONS,
    }
    return await _page(ctx, texts, asked=dict(DEMO_QUESTION))


async def from_tenant(ctx: Ctx) -> Response:
    """The editors from a tenant: the schema (any key may read it) and, for keys that
    may read relationships (`write`), the tenant's relationships, through the API."""
    asked = _asked(ctx)
    tenant = asked["tenant"].strip() or ("" if ctx.viewer.platform else ctx.viewer.tenant)
    asked["tenant"] = tenant
    texts = {"schema": "", "relationships": "", "assertions": ctx.field("assertions")}
    call: dict[str, Any] = {"metadata": ctx.metadata, "timeout": CALL_TIMEOUT_S}
    try:
        if not tenant:
            raise InvalidArgument("name the tenant to load", field="tenant")
        schema = await ctx.backend.schema.ReadSchema(schema_pb2.ReadSchemaRequest(), **call)
        texts["schema"] = schema.schema
        if ctx.can(Scope.WRITE):
            texts["relationships"] = await _relationships(ctx, tenant, call)
            note = ""
        else:
            note = "the tenant's relationships need a key with the `write` scope; schema only"
    except grpc.aio.AioRpcError as exc:
        return await _page(ctx, _texts(ctx), asked=asked, error=call_error(exc), status_code=400)
    except AuthzError as exc:
        return await _page(ctx, _texts(ctx), asked=asked, error=exc.message, status_code=400)
    return await _page(ctx, texts, asked=asked, evaluate=True, notice=note)


async def _relationships(ctx: Ctx, tenant: str, call: dict[str, Any]) -> str:
    request = relationships_pb2.ReadRelationshipsRequest(
        tenant=tenant, limit=sandbox.MAX_RELATIONSHIPS + 1
    )
    lines = []
    async for found in ctx.backend.relationships.ReadRelationships(request, **call):
        lines.append(str(convert.relationship(found.relationship, "relationship")))
    if len(lines) > sandbox.MAX_RELATIONSHIPS:
        raise InvalidArgument(
            f"tenant `{tenant}` has more than {sandbox.MAX_RELATIONSHIPS} relationships, "
            "more than the playground holds",
            field="tenant",
        )
    return "\n".join(lines) + ("\n" if lines else "")


async def import_(ctx: Ctx) -> Response:
    try:
        texts = import_file(ctx.field("file"))
    except InvalidArgument as exc:
        return await _page(ctx, _texts(ctx), asked=_asked(ctx), error=exc.message, status_code=400)
    return await _page(ctx, texts, asked=_asked(ctx), evaluate=True)


async def export(ctx: Ctx) -> Response:
    texts = _texts(ctx)
    try:
        body = export_file(texts["schema"], texts["relationships"], texts["assertions"])
    except InvalidArgument as exc:
        return await _page(ctx, texts, asked=_asked(ctx), error=exc.message, status_code=400)
    return Response(
        body,
        media_type="application/yaml",
        headers={"Content-Disposition": 'attachment; filename="playground.yaml"'},
    )


PAGE = Page(
    slug="playground",
    title="Playground",
    summary="Write a schema, relationships and assertions; validate them and ask questions.",
    needs=Scope.CHECK,
    routes=(
        PageRoute("", show),
        PageRoute("/validate", validate, methods=("POST",)),
        PageRoute("/ask", ask, methods=("POST",)),
        PageRoute("/demo", demo, methods=("POST",)),
        PageRoute("/import", import_, methods=("POST",)),
        PageRoute("/tenant", from_tenant, methods=("POST",)),
        PageRoute("/export", export, methods=("POST",)),
    ),
)
