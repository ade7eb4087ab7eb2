"""A small world of decisions to audit, made through the real gRPC API."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import grpc

from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2
from authz_service.app import App
from authz_service.cli import main
from authz_service.config import Settings
from tests.api.conftest import start_app
from tests.api.helpers import Api, obj, subj

SCHEMA = """
definition user {
    relation support: user
    permission impersonate = support
}
definition group {
    relation member: user | group#member
}
definition folder {
    relation viewer: user | group#member
    permission view = viewer
}
definition document {
    relation folder: folder
    relation viewer: user | group#member
    relation banned: user
    permission view = (viewer + folder->view) - banned
}
"""

# The same model, except that folders no longer pass `view` down to their documents.
ALTERED_SCHEMA = SCHEMA.replace(
    "permission view = (viewer + folder->view) - banned", "permission view = viewer - banned"
)

RELATIONSHIPS = (
    "group:eng#member@user:alice",
    "document:spec#viewer@group:eng#member",
    "folder:plans#viewer@user:bob",
    "folder:plans#viewer@user:carol",
    "document:roadmap#folder@folder:plans",
    "document:roadmap#banned@user:carol",
    "user:alice#support@user:sam",
)

# (resource, permission, subject): ALLOWED and DENIED, directly, via a group, via a
# folder, and excluded.
QUESTIONS = (
    ("document:spec", "view", "user:alice"),  # ALLOWED via group
    ("document:spec", "view", "user:bob"),  # DENIED
    ("document:roadmap", "view", "user:bob"),  # ALLOWED via folder
    ("document:roadmap", "view", "user:carol"),  # DENIED: banned
    ("document:roadmap", "view", "user:alice"),  # DENIED
    ("folder:plans", "view", "user:carol"),  # ALLOWED directly
)


@dataclass(frozen=True)
class Made:
    decision_id: str
    decision: str  # ALLOWED / DENIED
    question: tuple[str, str, str]
    revision_token: str


@dataclass(frozen=True)
class LogSetup:
    dsn: str
    log_dir: Path
    private_key: Path
    public_key: Path
    settings: Settings


@contextlib.asynccontextmanager
async def running(setup: LogSetup, **overrides: object) -> AsyncIterator[App]:
    """A server for the body of the block; stopped (log flushed, final checkpoint) after."""
    app = await start_app(replace(setup.settings, **overrides))  # type: ignore[arg-type]
    try:
        yield app
    finally:
        await app.stop(grace=1.0)


def channel_to(app: App) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")


_NAMES = {core_pb2.DECISION_ALLOWED: "ALLOWED", core_pb2.DECISION_DENIED: "DENIED"}


async def setup_world(api: Api, tenant: str) -> str:
    """Write the relationships; return the token of the write."""
    return await api.touch(tenant, *RELATIONSHIPS)


async def check(
    api: Api,
    tenant: str,
    question: tuple[str, str, str],
    *,
    explain: bool = False,
    actor: str | None = None,
    context: dict[str, object] | None = None,
) -> Made:
    resource, permission, subject = question
    request = permissions_pb2.CheckRequest(
        tenant=tenant,
        resource=obj(resource),
        permission=permission,
        subject=subj(subject),
        with_explanation=explain,
    )
    request.consistency.fully_consistent = True
    if actor is not None:
        request.actor.CopyFrom(subj(actor))
        request.reason = "ticket 4711"
    if context:
        request.context.update(context)
    reply = await api.permissions.Check(request)
    return Made(reply.decision_id, _NAMES[reply.decision], question, reply.checked_at.token)


async def check_bulk(
    api: Api, tenant: str, questions: Sequence[tuple[str, str, str]]
) -> list[Made]:
    request = permissions_pb2.CheckBulkRequest(tenant=tenant)
    request.consistency.fully_consistent = True
    for resource, permission, subject in questions:
        request.items.add(resource=obj(resource), permission=permission, subject=subj(subject))
    reply = await api.permissions.CheckBulk(request)
    return [
        Made(item.result.decision_id, _NAMES[item.result.decision], q, reply.checked_at.token)
        for item, q in zip(reply.items, questions, strict=True)
    ]


async def make_decisions(channel: grpc.aio.Channel, tenant: str) -> list[Made]:
    """Every question as a Check, one with an explanation, one on someone's behalf, and
    all of them again as one CheckBulk."""
    api = Api(channel)
    made = [await check(api, tenant, q) for q in QUESTIONS]
    made.append(await check(api, tenant, QUESTIONS[0], explain=True))
    made.append(await check(api, tenant, QUESTIONS[0], actor="user:sam"))
    made.extend(await check_bulk(api, tenant, QUESTIONS))
    return made


def run_cli(*argv: str) -> tuple[int, str, str]:
    """`authz ARGV...` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()
