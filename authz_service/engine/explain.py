"""Building explanation nodes. Only called when a request asked for an explanation, so
the plain check path pays nothing for it."""

from __future__ import annotations

from collections.abc import Sequence

from authz_service.engine.tristate import Tri
from authz_service.engine.types import Decision, ExplainNode
from authz_service.model import ObjectRef, Relationship, SubjectRef
from authz_service.schema.ast import Expr
from authz_service.schema.printer import print_expr

__all__ = [
    "EXPRESSION_KINDS",
    "caveat_reason",
    "expired_leaf",
    "expr_text",
    "is_expired_leaf",
    "node",
    "relationship_leaf",
]

# The kinds of step whose `relation` holds the expression text they evaluated rather than
# a relation name (`done_node` is given the expression). Readers that tell the two apart,
# such as the API's ExplanationNode (`relation` vs `expression`), go by this set.
EXPRESSION_KINDS = frozenset(
    {"union", "intersection", "exclusion", "arrow", "arrow_all", "nil", "self"}
)


def expr_text(expr: Expr) -> str:
    return print_expr(expr)


def _names(names: Sequence[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def caveat_reason(rel: Relationship, value: Tri) -> str | None:
    if rel.caveat is None:
        return None
    if value.is_false:
        return f"caveat `{rel.caveat.name}` is false"
    if value.value is None:
        return f"caveat `{rel.caveat.name}` needs {_names(value.missing_names)}"
    return None


def node(
    kind: str,
    obj: ObjectRef,
    relation: str,
    value: Tri,
    children: Sequence[ExplainNode] = (),
    *,
    reason: str | None = None,
    relationship: str | None = None,
    caveat: str | None = None,
) -> ExplainNode:
    if reason is None and value.value is None and kind != "relationship":
        reason = f"needs {_names(value.missing_names)}"
    return ExplainNode(
        kind=kind,
        object=str(obj),
        relation=relation,
        result=value.decision,
        relationship=relationship,
        caveat=caveat,
        reason=reason,
        children=tuple(children),
    )


def relationship_leaf(
    rel: Relationship,
    value: Tri,
    children: Sequence[ExplainNode] = (),
    *,
    reason: str | None = None,
    caveat: Tri | None = None,
) -> ExplainNode:
    """`value` is the step's outcome; `caveat` the relationship's caveat's own, when the
    step went on through a subject set or an arrow (else the two are the same). Kept apart
    so that a caveat that held is not reported false because the membership behind it
    failed."""
    held = value if caveat is None else caveat
    return ExplainNode(
        kind="relationship",
        object=str(rel.resource),
        relation=rel.relation,
        result=value.decision,
        relationship=str(rel),
        caveat=rel.caveat.name if rel.caveat else None,
        reason=reason or caveat_reason(rel, held),
        children=tuple(children),
        caveat_result=held.decision if rel.caveat else None,
        caveat_missing=held.missing_names if rel.caveat else (),
    )


_EXPIRED = "expired at "


def expired_leaf(rel: Relationship) -> ExplainNode:
    expiry = rel.expires_at.isoformat() if rel.expires_at else "?"
    return ExplainNode(
        kind="relationship",
        object=str(rel.resource),
        relation=rel.relation,
        result=Decision.DENIED,
        relationship=str(rel),
        caveat=rel.caveat.name if rel.caveat else None,
        reason=f"{_EXPIRED}{expiry}",
    )


def is_expired_leaf(node: ExplainNode) -> bool:
    """A relationship step that had ended: its caveat, if any, was never evaluated. Told
    by its reason, which is all a logged record keeps of it."""
    return node.kind == "relationship" and (node.reason or "").startswith(_EXPIRED)


def missing_relationship(obj: ObjectRef, relation: str, subject: SubjectRef) -> str:
    return f"no relationship `{obj}#{relation}` for `{subject}`"
