"""Engine explanations -> the API's Explanation message."""

from __future__ import annotations

from collections.abc import Collection

from authz_service.api import convert
from authz_service.api.gen.authz.v1 import core_pb2
from authz_service.engine import BindingRef, CheckResult, Decision, ExplainNode
from authz_service.engine.explain import EXPRESSION_KINDS, is_expired_leaf
from authz_service.engine.explain_layout import (
    DEFAULT_MAX_EXPLANATION_NODES,
    Step,
    any_truncated,
    layout,
    unique_nodes,
)
from authz_service.errors import InvalidArgument
from authz_service.model import (
    ObjectRef,
    Relationship,
    parse_object,
    parse_relationship,
    parse_subject,
)

__all__ = ["deny_reason", "explanation_to_proto"]

_Node = core_pb2.ExplanationNode
_KINDS = {
    "permission": _Node.KIND_PERMISSION,
    "relation": _Node.KIND_RELATION,
    "alias": _Node.KIND_RELATION,
    "self": _Node.KIND_RELATION,
    "union": _Node.KIND_UNION,
    "intersection": _Node.KIND_INTERSECTION,
    "exclusion": _Node.KIND_EXCLUSION,
    "arrow": _Node.KIND_ARROW,
    "arrow_all": _Node.KIND_ARROW_ALL,
    "nil": _Node.KIND_NIL,
    "cycle": _Node.KIND_CYCLE,
    "relationship": _Node.KIND_RELATIONSHIP,
    "grant": _Node.KIND_ROLE_BINDING,
    "impersonation": _Node.KIND_IMPERSONATION,
    "agents": _Node.KIND_DELEGATION,
    "principal": _Node.KIND_PERMISSION,
    "agent": _Node.KIND_PERMISSION,
    # Rules of the service layer (service/gates.py), shown as a denied permission step.
    "tenant": _Node.KIND_PERMISSION,
    "lifecycle": _Node.KIND_PERMISSION,
    "delegation": _Node.KIND_PERMISSION,
}


def _object(text: str) -> core_pb2.ObjectReference | None:
    kind, sep, ident = text.partition(":")
    return convert.object_to_proto(ObjectRef(kind, ident)) if sep else None


def _node(step: Step, contextual: frozenset[object]) -> core_pb2.ExplanationNode:
    node = step.node
    # The engine keeps an operator step's expression text in `relation`; the API promises
    # a name there and the text in `expression` (tests/api/test_explanation_fields.py).
    operator = node.kind in EXPRESSION_KINDS
    msg = core_pb2.ExplanationNode(
        # Every kind the engine and the rules make is mapped (tests/api/test_explanation_kinds.py
        # checks); an unknown one could come only from an old record's JSON.
        kind=_KINDS.get(node.kind, _Node.KIND_UNSPECIFIED),
        relation="" if operator else node.relation,
        result=convert.decision_to_proto(node.result),
        expression=node.relation if operator else "",
        reason=node.reason or "",
    )
    obj = _object(node.object)
    if obj is not None:
        msg.object.CopyFrom(obj)
    if node.relationship:
        try:
            parsed = parse_relationship(node.relationship)
            msg.relationship.CopyFrom(convert.relationship_to_proto(parsed))
            msg.contextual = parsed.key in contextual
        except InvalidArgument:
            # Only an old record's JSON can hold one; quoted so that it is not lost.
            msg.reason = f"{msg.reason} {node.relationship}".strip()
    if node.caveat:
        _caveat(msg, node)
    if node.binding is not None:
        msg.binding.CopyFrom(_binding(node.binding))
    if node.subject:
        # The checked subject, the actor and the chain's members were validated before the
        # check (audit_convert checks a record's subject), so this always parses.
        msg.subject.CopyFrom(convert.subject_to_proto(parse_subject(node.subject)))
    msg.node_id = step.node_id
    msg.same_as = step.same_as
    msg.truncated = step.truncated
    msg.children.extend(_node(child, contextual) for child in step.children)
    return msg


def _caveat(msg: core_pb2.ExplanationNode, node: ExplainNode) -> None:
    """CaveatEvaluation of a caveated relationship step. `context` is the context stored
    with the relationship only: the request's context is the caller's own, and repeating it
    here would carry it into the decision log's explanation, past AUTHZ_LOG_REDACT (which
    redacts a record's `context`)."""
    msg.caveat.name = node.caveat or ""
    if msg.relationship.caveat.HasField("context"):
        msg.caveat.context.CopyFrom(msg.relationship.caveat.context)
    if node.caveat_result is not None:
        msg.caveat.result = convert.decision_to_proto(node.caveat_result)
    if node.caveat_result is Decision.CONDITIONAL:
        msg.caveat.missing_context.extend(node.caveat_missing)


def _binding(ref: BindingRef) -> core_pb2.RoleBinding:
    msg = core_pb2.RoleBinding(binding_id=ref.binding_id, role=ref.role)
    try:
        msg.subject.CopyFrom(convert.subject_to_proto(parse_subject(ref.subject)))
        if ref.scope:
            msg.resource.CopyFrom(convert.object_to_proto(parse_object(ref.scope)))
    except InvalidArgument:  # pragma: no cover - bindings are validated when created
        pass
    return msg


def deny_reason(result: CheckResult) -> core_pb2.DenyReason.ValueType:
    if result.decision is Decision.ALLOWED:
        return core_pb2.DENY_REASON_UNSPECIFIED
    if result.decision is Decision.CONDITIONAL:
        return core_pb2.DENY_REASON_MISSING_CONTEXT
    nodes = list(unique_nodes(result.explanation)) if result.explanation else []
    # Only the rules' own nodes are read for these words, right after the quoted subject:
    # reasons quote user input, and an object id may well contain "suspended".
    for n in nodes:
        reason = n.reason or ""
        if n.kind == "tenant":
            return core_pb2.DENY_REASON_TENANT_SUSPENDED
        if n.kind == "lifecycle" and "` is suspended" in reason:
            return core_pb2.DENY_REASON_SUBJECT_SUSPENDED
        if n.kind == "lifecycle" and "` is deprovisioned" in reason:
            return core_pb2.DENY_REASON_SUBJECT_DEPROVISIONED
        if n.kind == "delegation" and "non-delegable" in reason:
            return core_pb2.DENY_REASON_NON_DELEGABLE
        if n.kind == "impersonation" and "may not impersonate" in reason:
            return core_pb2.DENY_REASON_IMPERSONATION_NOT_ALLOWED
        if n.kind == "agent" and n.result is Decision.DENIED:
            return core_pb2.DENY_REASON_AGENT_NOT_ALLOWED
    for n in nodes:
        if n.kind == "exclusion" and n.children and n.children[0].result is Decision.ALLOWED:
            return core_pb2.DENY_REASON_EXCLUDED
    if any(_caveat_false(n) for n in nodes):
        return core_pb2.DENY_REASON_CAVEAT_FALSE
    return core_pb2.DENY_REASON_NO_GRANT


def _caveat_false(node: ExplainNode) -> bool:
    """A relationship step denied by its caveat: the caveat's own outcome when known (a
    step through a subject set can fail with its caveat true); a record written before that
    was kept has only the step's."""
    if node.kind != "relationship" or not node.caveat or is_expired_leaf(node):
        return False  # an expired relationship's caveat was never evaluated: no grant
    outcome = node.caveat_result if node.caveat_result is not None else node.result
    return outcome is Decision.DENIED


def explanation_to_proto(
    result: CheckResult,
    max_nodes: int = DEFAULT_MAX_EXPLANATION_NODES,
    contextual: Collection[Relationship] = (),
) -> core_pb2.Explanation:
    """At most `max_nodes` nodes, each shared step written once (see `explain_layout`).
    A relationship step is marked `contextual` when the request supplied it."""
    msg = core_pb2.Explanation(deny_reason=deny_reason(result))
    if result.explanation is not None:
        root = layout(result.explanation, max_nodes)
        msg.root.CopyFrom(_node(root, frozenset(r.key for r in contextual)))
        msg.truncated = any_truncated(root)
    return msg
