"""Reading recorded explanations: one-line reasons and indented trees for people.

A record's `explanation` is one of (see `service.audit`):

    {"kind": "permission", ...children}      the evaluation tree (with_explanation)
    {"missing_context": ["ip", ...]}         CONDITIONAL without an explanation
    {"error": "LimitExceeded", "message": …} the evaluation failed; the caller got an error
    {}                                       a plain check: only the decision was kept
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict
from typing import Any

from authz_service.engine import BindingRef, Decision, ExplainNode
from authz_service.engine.explain import EXPRESSION_KINDS
from authz_service.engine.explain_layout import DEFAULT_MAX_EXPLANATION_NODES, Step, layout

__all__ = [
    "error_of",
    "has_tree",
    "node_from_json",
    "node_to_json",
    "summary",
    "tree_lines",
]

_MAX_REASONS = 3


def has_tree(explanation: Mapping[str, Any]) -> bool:
    return "kind" in explanation and "result" in explanation


def error_of(explanation: Mapping[str, Any]) -> str | None:
    """The error class of a failed evaluation (`LimitExceeded`), or None."""
    error = explanation.get("error")
    return error if isinstance(error, str) else None


def node_from_json(data: Mapping[str, Any]) -> ExplainNode:
    """Rebuild an engine explanation from its recorded JSON form, shared steps shared
    again (a step written once with `id` and referenced later by `same_as`)."""
    return _from_json(data, {})


def _from_json(data: Mapping[str, Any], by_id: dict[int, ExplainNode]) -> ExplainNode:
    same_as = data.get("same_as")
    if isinstance(same_as, int) and same_as in by_id:
        return by_id[same_as]
    binding = data.get("binding")
    caveat_result = data.get("caveat_result")
    node = ExplainNode(
        kind=str(data["kind"]),
        object=str(data.get("object", "")),
        relation=str(data.get("relation", "")),
        result=Decision(data["result"]),
        relationship=data.get("relationship"),
        caveat=data.get("caveat"),
        reason=data.get("reason"),
        children=tuple(_from_json(child, by_id) for child in data.get("children", ())),
        binding=BindingRef(**binding) if isinstance(binding, Mapping) else None,
        subject=data.get("subject"),
        # Absent from records written before caveat outcomes were kept.
        caveat_result=Decision(caveat_result) if caveat_result else None,
        caveat_missing=tuple(str(m) for m in data.get("caveat_missing", ())),
    )
    if isinstance(data.get("id"), int):
        by_id[data["id"]] = node
    return node


def node_to_json(
    node: ExplainNode, max_nodes: int = DEFAULT_MAX_EXPLANATION_NODES
) -> dict[str, Any]:
    """The recorded JSON form: empty fields left out, each shared step written once (its
    first occurrence has `id`, later ones only `same_as` and its own fields), at most
    `max_nodes` steps (a node that lost children has `truncated`)."""
    return _step_json(layout(node, max_nodes))


def _step_json(step: Step) -> dict[str, Any]:
    node = step.node
    data: dict[str, Any] = {
        "kind": node.kind,
        "object": node.object,
        "relation": node.relation,
        "result": node.result.value,
    }
    for name in ("relationship", "caveat", "reason", "subject"):
        value = getattr(node, name)
        if value is not None:
            data[name] = value
    if node.caveat_result is not None:
        data["caveat_result"] = node.caveat_result.value
    if node.caveat_missing:
        data["caveat_missing"] = list(node.caveat_missing)
    if node.binding is not None:
        data["binding"] = asdict(node.binding)
    for name in ("id", "same_as"):
        number = step.node_id if name == "id" else step.same_as
        if number:
            data[name] = number
    if step.truncated:
        data["truncated"] = True
    if step.children:
        data["children"] = [_step_json(child) for child in step.children]
    return data


def summary(decision: str, explanation: Mapping[str, Any]) -> str:
    """One line: the granting path of an ALLOWED decision, or why it was not allowed."""
    error = error_of(explanation)
    if error is not None:
        return f"error `{error}`: {explanation.get('message', '')}".rstrip(": ")
    missing = explanation.get("missing_context")
    if not has_tree(explanation):
        if missing:
            return "needs context: " + ", ".join(str(m) for m in missing)
        return "no explanation recorded"
    if decision == Decision.ALLOWED.value:
        path = list(_proof(explanation))
        return "via " + ", ".join(path) if path else "allowed"
    reasons = list(dict.fromkeys(_reasons(explanation)))
    if not reasons:
        return "no granting path"
    shown = "; ".join(reasons[:_MAX_REASONS])
    more = len(reasons) - _MAX_REASONS
    return shown + (f"; and {more} more" if more > 0 else "")


def _proof(node: Mapping[str, Any]) -> Iterator[str]:
    """Relationships (and grants) on the ALLOWED branches, in evaluation order."""
    if node.get("result") != Decision.ALLOWED.value:
        return
    if node.get("relationship"):
        yield str(node["relationship"])
    elif node.get("kind") == "grant":
        yield f"grant {node.get('object')}#{node.get('relation')}"
    for child in node.get("children", ()):
        yield from _proof(child)


def _reasons(node: Mapping[str, Any]) -> Iterator[str]:
    """Why the non-ALLOWED branches failed: the reason nearest the root on each branch;
    for an exclusion, also what excluded."""
    if node.get("result") == Decision.ALLOWED.value:
        return
    reason = node.get("reason")
    if reason:
        excluded: list[str] = []
        if node.get("kind") == "exclusion":
            for child in node.get("children", ())[1:]:
                excluded.extend(_proof(child))
        yield str(reason) + (f" ({', '.join(excluded)})" if excluded else "")
        return
    children = node.get("children", ())
    if node.get("kind") == "exclusion":
        children = children[:1]  # a subtracted branch that failed is not why: the base is
    for child in children:
        yield from _reasons(child)


def tree_lines(explanation: Mapping[str, Any], indent: str = "") -> list[str]:
    """The evaluation tree, one step per line, children indented under their parent."""
    if not has_tree(explanation):
        return []
    lines: list[str] = []
    _tree(explanation, indent, lines)
    return lines


def _tree(node: Mapping[str, Any], indent: str, out: list[str]) -> None:
    kind = str(node.get("kind", "?"))
    if node.get("relationship"):
        label = str(node["relationship"])
    elif kind in EXPRESSION_KINDS:  # `relation` holds the expression text
        label = str(node.get("relation", ""))
    else:
        relation = node.get("relation")
        label = f"{node.get('object', '')}#{relation}" if relation else str(node.get("object"))
    line = f"{indent}{node.get('result', '?'):<11} {kind} {label}"
    if node.get("caveat"):
        line += f" [caveat {node['caveat']}]"
    if node.get("reason"):
        line += f"  ({node['reason']})"
    if node.get("id"):
        line += f"  [#{node['id']}]"
    if node.get("same_as"):
        line += f"  [same as #{node['same_as']}, shown above]"
    if node.get("truncated"):
        line += "  [more steps left out: explanation node limit]"
    out.append(line)
    for child in node.get("children", ()):
        _tree(child, indent + "  ", out)
