"""What evaluating one node gathers from its children besides their values."""

from __future__ import annotations

from datetime import datetime

from authz_service.engine import explain as ex
from authz_service.engine.dispatch import Subproblem, SubResult
from authz_service.engine.reads import earliest_expiry
from authz_service.engine.tristate import Tri
from authz_service.engine.types import ExplainNode
from authz_service.model import Relationship
from authz_service.schema.ast import Expr

__all__ = ["Accumulator"]


class Accumulator:
    """Collects what children contribute besides their value: expiry, volatility, open
    cycles relied on, and (when explaining) their explanation nodes."""

    __slots__ = ("cycle_index", "nodes", "valid_until", "volatile")

    def __init__(self, explain: bool) -> None:
        self.valid_until: datetime | None = None
        self.volatile = False
        self.cycle_index: int | None = None
        self.nodes: list[ExplainNode] | None = [] if explain else None

    def merge(self, r: SubResult) -> Tri:
        if r.valid_until is not None and (
            self.valid_until is None or r.valid_until < self.valid_until
        ):
            self.valid_until = r.valid_until
        self.volatile = self.volatile or r.volatile
        if r.cycle_index is not None and (
            self.cycle_index is None or r.cycle_index < self.cycle_index
        ):
            self.cycle_index = r.cycle_index
        return r.value

    def take(self, r: SubResult) -> Tri:
        """Merge, and keep the child's explanation as a child of the node being built."""
        if self.nodes is not None and r.explanation is not None:
            self.nodes.append(r.explanation)
        return self.merge(r)

    def consulted(self, rels: tuple[Relationship, ...]) -> None:
        expiry = earliest_expiry(rels)
        if expiry is not None and (self.valid_until is None or expiry < self.valid_until):
            self.valid_until = expiry

    def add(self, explanation: ExplainNode) -> None:
        if self.nodes is not None:
            self.nodes.append(explanation)

    def done(self, value: Tri, explanation: ExplainNode | None = None) -> SubResult:
        return SubResult(value, self.valid_until, self.volatile, self.cycle_index, explanation)

    def done_node(
        self, req: Subproblem, kind: str, relation: str | Expr, value: Tri, **kw: str
    ) -> SubResult:
        explanation = None
        if self.nodes is not None:
            text = relation if isinstance(relation, str) else ex.expr_text(relation)
            explanation = ex.node(kind, req.resource, text, value, self.nodes, **kw)
        return self.done(value, explanation)
