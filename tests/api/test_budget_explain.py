"""Explanations are written as the graph they are (issue 10): a step shared by many
paths is sent once, so an explanation grows with the work done, never with the number
of paths; and past AUTHZ_MAX_EXPLANATION_NODES it is cut, with a marker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2
from authz_service.app import App
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import ALLOWED, DENIED, Api, obj, subj
from tests.api.stall import lattice

LEVELS = 16  # 2^16 paths: as a tree, about a million nodes


def _nodes(node: core_pb2.ExplanationNode) -> Iterator[core_pb2.ExplanationNode]:
    yield node
    for child in node.children:
        yield from _nodes(child)


async def _start(dsn: str, tmp_path: Path, **overrides: object) -> App:
    return await start_app(server_settings(dsn, tmp_path, log_mode="buffered", **overrides))


@pytest.fixture
async def lattice_api(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Api]:
    app = await _start(pg_dsn, tmp_path)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            api = Api(channel)
            await api.write_schema()
            await api.touch("acme", *lattice(LEVELS))
            yield api
    finally:
        await app.stop(grace=1.0)


def _request() -> permissions_pb2.CheckRequest:
    return permissions_pb2.CheckRequest(
        tenant="acme",
        resource=obj("document:doc"),
        permission="view",
        subject=subj("user:alice"),
        with_explanation=True,
    )


@pytest.mark.timeout(60)
async def test_shared_steps_are_sent_once(lattice_api: Api) -> None:
    reply = await lattice_api.permissions.Check(_request())
    assert reply.decision == DENIED
    nodes = list(_nodes(reply.explanation.root))
    # Each level adds a handful of steps; a tree would double per level.
    assert len(nodes) < 20 * LEVELS
    ids = {n.node_id for n in nodes if n.node_id}
    refs = [n.same_as for n in nodes if n.same_as]
    assert refs
    assert set(refs) <= ids
    assert all(not n.children for n in nodes if n.same_as)
    assert not reply.explanation.truncated


@pytest.mark.timeout(60)
async def test_explain_rpc_is_linear_too(lattice_api: Api) -> None:
    reply = await lattice_api.permissions.Explain(
        permissions_pb2.ExplainRequest(
            tenant="acme",
            resource=obj("document:doc"),
            permission="view",
            subject=subj("user:alice"),
        )
    )
    assert reply.decision == DENIED
    assert len(list(_nodes(reply.explanation.root))) < 20 * LEVELS


async def test_explanation_over_the_node_limit_is_cut_with_a_marker(
    pg_dsn: str, tmp_path: Path
) -> None:
    app = await _start(pg_dsn, tmp_path, max_explanation_nodes=10)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            api = Api(channel)
            await api.write_schema()
            await api.touch("acme", *lattice(4))
            reply = await api.permissions.Check(_request())
    finally:
        await app.stop(grace=1.0)
    assert reply.decision == DENIED  # the cut changes what is shown, never the answer
    assert reply.explanation.truncated
    nodes = list(_nodes(reply.explanation.root))
    assert len(nodes) <= 10
    assert any(n.truncated for n in nodes)


def _depth(node: core_pb2.ExplanationNode) -> int:
    return 1 + max((_depth(child) for child in node.children), default=0)


async def test_a_deep_explanation_is_cut_at_64_steps(pg_dsn: str, tmp_path: Path) -> None:
    """Each step's message nests in its parent's, and protobuf decodes at most 100 levels:
    Explain through 30 nested folders (four steps each) once failed with INTERNAL, on the
    server building the response. The decision log records the same cut tree."""
    app = await _start(pg_dsn, tmp_path)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            api = Api(channel)
            await api.write_schema()
            folders = [f"folder:f{i}#parent@folder:f{i + 1}" for i in range(30)]
            await api.touch(
                "acme", *folders, "folder:f30#viewer@user:alice", "document:doc#folder@folder:f0"
            )
            explained = await api.explain("acme", "document:doc", "view", "user:alice")
            request = _request()
            request.consistency.fully_consistent = True
            checked = await api.permissions.Check(request)
    finally:
        await app.stop(grace=1.0)
    for reply in (explained, checked):
        assert reply.decision == ALLOWED  # the cut changes what is shown, never the answer
        assert reply.explanation.truncated
        assert _depth(reply.explanation.root) == 64
        assert any(n.truncated for n in _nodes(reply.explanation.root))
