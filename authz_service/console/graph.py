"""An explanation (core.proto `Explanation`) as a graph: steps with their outcome, drawn
as inline SVG by a small layered layout (each depth one row; leaves side by side, a
parent centred over its children), and given to templates as a nested tree as well, for
screen readers and browsers without SVG.

The granting path is the chain of ALLOWED steps from the root: its edges are drawn bold.
A step reached along several paths is drawn once; later occurrences are small
`same as step N` nodes (the server sends them that way, see `node_id` / `same_as`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from google.protobuf.json_format import MessageToDict
from markupsafe import Markup, escape

from authz_service.api.gen.authz.v1 import core_pb2

__all__ = ["Graph", "Step", "from_explanation"]

_Node = core_pb2.ExplanationNode
_OPERATORS = {
    _Node.KIND_UNION: "any of (+)",
    _Node.KIND_INTERSECTION: "all of (&)",
    _Node.KIND_EXCLUSION: "but not (-)",
    _Node.KIND_ARROW: "arrow",
    _Node.KIND_ARROW_ALL: "arrow, all",
    _Node.KIND_NIL: "nil",
    _Node.KIND_IMPERSONATION: "impersonation",
}
_RESULTS = {
    core_pb2.DECISION_ALLOWED: "allowed",
    core_pb2.DECISION_DENIED: "denied",
    core_pb2.DECISION_CONDITIONAL: "conditional",
}
WIDTH, HEIGHT, GAP_X, GAP_Y, LINE = 250, 70, 16, 36, 15
_CHARS = 33  # per line inside a node; the full text is in the node's <title>


@dataclass(frozen=True, slots=True)
class Step:
    number: int  # depth-first position, 1-based: "step 3"
    title: str  # what was asked: `document:readme#view`, a relationship, an operator
    result: str  # allowed, denied, conditional, unknown
    detail: str = ""  # for whom, the expression evaluated, and the reason, when known
    caveat: str = ""  # caveat name, outcome, missing parameters and context
    note: str = ""  # same as step N; steps left out
    children: tuple[Step, ...] = ()
    x: float = 0.0
    depth: int = 0

    @property
    def lines(self) -> list[str]:
        return [
            t
            for t in (self.title, self.result.upper() + _tail(self.detail), self.caveat, self.note)
            if t
        ]


@dataclass(frozen=True, slots=True)
class Graph:
    root: Step
    decision: str
    deny_reason: str
    truncated: bool
    steps: int
    width: float = 0.0
    height: float = 0.0
    nodes: tuple[Step, ...] = field(default=())

    def svg(self) -> Markup:
        return _svg(self)


def _tail(detail: str) -> str:
    return f" · {detail}" if detail else ""


def _object(ref: core_pb2.ObjectReference) -> str:
    return f"{ref.object_type}:{ref.object_id}" if ref.object_type else ""


def _subject(ref: core_pb2.SubjectReference) -> str:
    text = _object(ref.object)
    return f"{text}#{ref.relation}" if ref.relation else text


def _context(struct: object) -> str:
    data = MessageToDict(struct)  # type: ignore[arg-type]
    return json.dumps(data, sort_keys=True, separators=(",", ":")) if data else ""


def _title(node: core_pb2.ExplanationNode) -> str:
    if node.kind == _Node.KIND_RELATIONSHIP and node.HasField("relationship"):
        rel = node.relationship
        text = f"{_object(rel.resource)}#{rel.relation}@{_subject(rel.subject)}"
        return text + (" (contextual)" if node.contextual else "")
    if node.kind == _Node.KIND_ROLE_BINDING and node.HasField("binding"):
        scope = _object(node.binding.resource) or "the tenant"
        return f"role {node.binding.role} for {_subject(node.binding.subject)} on {scope}"
    target = _object(node.object)
    named = f"{target}#{node.relation}" if node.relation else target
    operator = _OPERATORS.get(node.kind)
    if operator is None:
        return named
    return f"{operator}: {named}" if node.kind == _Node.KIND_IMPERSONATION else operator


def _caveat(node: core_pb2.ExplanationNode) -> str:
    name = node.caveat.name or (
        node.relationship.caveat.name if node.HasField("relationship") else ""
    )
    if not name:
        return ""
    parts = [f"caveat {name}"]
    if node.caveat.result:
        parts.append(_RESULTS.get(node.caveat.result, "unknown"))
    if node.caveat.missing_context:
        parts.append("missing " + ", ".join(node.caveat.missing_context))
    context = _context(node.caveat.context) or (
        _context(node.relationship.caveat.context) if node.HasField("relationship") else ""
    )
    if context:
        parts.append(f"context {context}")
    return " · ".join(parts)


def _detail(node: core_pb2.ExplanationNode) -> str:
    """The expression an operator step evaluated and why a step failed are separate fields
    (`expression`, `reason`); a reader wants both, after the subject when the step names
    one (the root, an impersonating actor, a member of a delegation chain)."""
    who = f"for {_subject(node.subject)}" if node.subject.HasField("object") else ""
    return " · ".join(text for text in (who, node.expression, node.reason) if text)


def _steps(node: core_pb2.ExplanationNode, counter: Iterator[int], depth: int) -> Step:
    number = next(counter)
    note = ""
    if node.same_as:
        note = f"same as node {node.same_as}: its steps are shown there"
    elif node.truncated:
        note = "more steps left out (node limit)"
    children = tuple(_steps(child, counter, depth + 1) for child in node.children)
    return Step(
        number=number,
        title=_title(node),
        result=_RESULTS.get(node.result, "unknown"),
        detail=_detail(node),
        caveat=_caveat(node),
        note=(f"node {node.node_id}" + (f" · {note}" if note else "")) if node.node_id else note,
        children=children,
        depth=depth,
    )


def _place(step: Step, slots: list[float]) -> Step:
    """`step` with x set: leaves take the next slot, parents sit over their children."""
    if not step.children:
        x = slots[0]
        slots[0] += WIDTH + GAP_X
        return _replace(step, x=x, children=())
    children = tuple(_place(child, slots) for child in step.children)
    return _replace(step, x=(children[0].x + children[-1].x) / 2, children=children)


def _replace(step: Step, *, x: float, children: tuple[Step, ...]) -> Step:
    return Step(
        step.number, step.title, step.result, step.detail, step.caveat, step.note,
        children, x, step.depth,
    )  # fmt: skip


def _walk(step: Step) -> Iterator[Step]:
    yield step
    for child in step.children:
        yield from _walk(child)


def from_explanation(
    explanation: core_pb2.Explanation, decision: core_pb2.Decision.ValueType
) -> Graph:
    """The graph of `explanation` for a decision of `decision` (a core_pb2.Decision)."""
    counter = iter(range(1, 1 << 30))
    root = _place(_steps(explanation.root, counter, 0), [0.0])
    nodes = tuple(_walk(root))
    depth = max(n.depth for n in nodes)
    reason = core_pb2.DenyReason.Name(explanation.deny_reason).removeprefix("DENY_REASON_")
    return Graph(
        root=root,
        decision=_RESULTS.get(decision, "unknown"),
        deny_reason="" if reason == "UNSPECIFIED" else reason.lower().replace("_", " "),
        truncated=explanation.truncated,
        steps=len(nodes),
        width=max(n.x for n in nodes) + WIDTH + 2,
        height=(depth + 1) * (HEIGHT + GAP_Y) - GAP_Y + 2,
        nodes=nodes,
    )


def _cut(text: str) -> str:
    return text if len(text) <= _CHARS else text[: _CHARS - 1] + "…"


def _svg(graph: Graph) -> Markup:
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{graph.width:.0f}" '
        f'height="{graph.height:.0f}" viewBox="0 0 {graph.width:.0f} {graph.height:.0f}" '
        'role="img" aria-labelledby="graph-title">'
        f'<title id="graph-title">Explanation graph: {escape(graph.decision)}, '
        f"{graph.steps} steps (the list below has the same steps as text)</title>"
    ]
    for node in graph.nodes:
        top = node.depth * (HEIGHT + GAP_Y)
        for child in node.children:
            granting = node.result == "allowed" and child.result == "allowed"
            parts.append(
                f'<line class="edge{" granting" if granting else ""}" '
                f'x1="{node.x + WIDTH / 2:.0f}" y1="{top + HEIGHT:.0f}" '
                f'x2="{child.x + WIDTH / 2:.0f}" y2="{top + HEIGHT + GAP_Y:.0f}"/>'
            )
    for node in graph.nodes:
        top = node.depth * (HEIGHT + GAP_Y)
        full = " — ".join(node.lines)
        parts.append(
            f'<g class="node {node.result}" data-step="{node.number}">'
            f"<title>step {node.number}: {escape(full)}</title>"
            f'<rect x="{node.x + 1:.0f}" y="{top + 1:.0f}" width="{WIDTH - 2}" '
            f'height="{HEIGHT - 2}" rx="6"/>'
        )
        for i, line in enumerate(node.lines[:4]):
            cls = ' class="head"' if i == 0 else ""
            parts.append(
                f'<text{cls} x="{node.x + 8:.0f}" y="{top + 16 + i * LINE:.0f}">'
                f"{escape(_cut(line))}</text>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))
