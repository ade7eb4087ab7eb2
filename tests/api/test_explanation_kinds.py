"""Explanation kinds: every step the engine or the service's rules can produce is sent as
a documented ExplanationNode.Kind, never KIND_UNSPECIFIED ("never sent by the server",
core.proto), and `rel.all(perm)` is KIND_ARROW_ALL."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import grpc

from authz_service.api.explain import explanation_to_proto
from authz_service.api.gen.authz.v1 import core_pb2, tenants_pb2
from authz_service.engine import CheckResult, Decision, ExplainNode
from tests.api.helpers import Api

_Node = core_pb2.ExplanationNode
_SOURCE = Path(__file__).resolve().parents[2] / "authz_service"
# Where a node's kind is given: ExplainNode(kind=...), node(kind, ...), done_node(req, kind, ...).
_KIND_ARG = {"ExplainNode": None, "node": 0, "done_node": 1}


def _name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def _choices(expr: ast.AST) -> set[str]:
    """The strings an expression can be: a literal, or either branch of `a if c else b`."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        return _choices(expr.body) | _choices(expr.orelse)
    return set()


def _kind_args(tree: ast.AST) -> Iterator[tuple[ast.AST, ast.expr]]:
    """(enclosing function, kind expression) of every call that makes a node."""
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for call in ast.walk(func):
            if not isinstance(call, ast.Call) or _name(call) not in _KIND_ARG:
                continue
            position = _KIND_ARG[_name(call)]
            if position is not None and len(call.args) > position:
                yield func, call.args[position]
            for keyword in call.keywords:
                if keyword.arg == "kind":
                    yield func, keyword.value


def produced_kinds() -> set[str]:
    """Every kind string the code passes when it makes an explanation node: literals, and
    the literals assigned to a local variable passed instead. A parameter or an attribute
    passed through (`kind=node.kind`) adds nothing of its own."""
    found: set[str] = set()
    for path in _SOURCE.rglob("*.py"):
        if "gen" in path.relative_to(_SOURCE).parts:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for func, expr in _kind_args(tree):
            found |= _choices(expr)
            if isinstance(expr, ast.Name):
                for node in ast.walk(func):
                    if isinstance(node, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == expr.id for t in node.targets
                    ):
                        found |= _choices(node.value)
    return found


def test_every_kind_the_code_produces_maps_to_a_documented_kind() -> None:
    kinds = produced_kinds()
    # The scan finds the kinds made in each way (a literal, a variable, a rule of the
    # service layer): if it stopped finding them, it would prove nothing.
    assert {"permission", "union", "relationship", "cycle", "tenant", "agent"} <= kinds
    assert "arrow_all" in kinds
    for kind in sorted(kinds):
        node = ExplainNode(kind=kind, object="document:x", relation="view", result=Decision.DENIED)
        sent = explanation_to_proto(CheckResult(Decision.DENIED, explanation=node)).root
        assert sent.kind != _Node.KIND_UNSPECIFIED, kind


SCHEMA = """
definition user {}
definition group {
    relation member: user | group#member
}
definition folder {
    relation parent: folder
    relation viewer: user
    permission view = viewer
    permission everywhere = parent.all(view)
}
"""


def _kinds(node: core_pb2.ExplanationNode) -> list[int]:
    return [node.kind, *(k for child in node.children for k in _kinds(child))]


async def _explain(api: Api, resource: str, permission: str, subject: str) -> core_pb2.Explanation:
    reply = await api.explain("acme", resource, permission, subject)
    assert _Node.KIND_UNSPECIFIED not in _kinds(reply.explanation.root)
    return reply.explanation


async def test_cycles_all_arrows_and_a_suspended_tenant_have_their_kinds(
    channel: grpc.aio.Channel,
) -> None:
    api = Api(channel)
    await api.write_schema(SCHEMA)
    await api.touch(
        "acme",
        "group:a#member@group:b#member",
        "group:b#member@group:a#member",
        "folder:f#parent@folder:p",
        "folder:f#parent@folder:q",
        "folder:p#viewer@user:x",
        "folder:q#viewer@user:x",
    )
    cycle = await _explain(api, "group:a", "member", "user:x")
    assert _Node.KIND_CYCLE in _kinds(cycle.root)

    every = await _explain(api, "folder:f", "everywhere", "user:x")
    assert _Node.KIND_ARROW_ALL in _kinds(every.root)
    assert _Node.KIND_ARROW not in _kinds(every.root)

    await api.tenants.SuspendTenant(tenants_pb2.SuspendTenantRequest(name="acme", reason="unpaid"))
    suspended = await _explain(api, "folder:p", "view", "user:x")
    assert suspended.deny_reason == core_pb2.DENY_REASON_TENANT_SUSPENDED
