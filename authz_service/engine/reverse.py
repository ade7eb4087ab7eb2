"""The schema read backwards, for LookupResources. Built once per schema version.

For a pair (type, relation-or-permission), an `Edge` says how object ids known to be
candidates for it make ids of another pair candidates:

- `ref`: permission `T.p` mentions `r` (a computed userset): candidates of `T.r` are
  candidates of `T.p`;
- `subject_set`: relation `T.R` allows `X#r`: resources of relationships `T:?#R@X:id#r`
  for candidate ids of `X.r` are candidates of `T.R`;
- `arrow`: permission `T.p` has `rel->t`: resources of relationships `T:?#rel@X:id[#any]`
  for candidate ids of `X.t` are candidates of `T.p`.

Only the branches whose truth a resource needs are followed: every branch of a union,
one branch of an intersection (the first), the base of an exclusion. Candidates are a
superset of the answer (caveats are ignored); Check decides each.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Literal

from authz_service.schema.ast import (
    Arrow,
    Exclusion,
    Expr,
    Intersection,
    RelationRef,
    SelfRef,
    Union,
)
from authz_service.schema.compiled import CompiledSchema

__all__ = ["Edge", "Pair", "ReverseIndex"]

Pair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Edge:
    kind: Literal["ref", "subject_set", "arrow"]
    source: Pair
    target: Pair
    relation: str = ""  # subject_set: the target relation; arrow: the tupleset relation
    subject_relation: str | None = None  # subject_set: `r` of `X#r`; arrow: None (any)


def _needed_leaves(expr: Expr) -> list[Expr]:
    if isinstance(expr, Union):
        return [leaf for child in expr.children for leaf in _needed_leaves(child)]
    if isinstance(expr, Intersection):
        return _needed_leaves(expr.children[0]) if expr.children else []
    if isinstance(expr, Exclusion):
        return _needed_leaves(expr.base)
    if isinstance(expr, RelationRef | Arrow | SelfRef):
        return [expr]
    return []


@dataclass(slots=True)
class ReverseIndex:
    consumers: dict[Pair, list[Edge]] = field(default_factory=lambda: defaultdict(list))
    # (subject type, subject relation) -> relations whose relationships may name it directly
    direct: dict[Pair, list[Pair]] = field(default_factory=lambda: defaultdict(list))
    # subject type -> permissions of that type that contain `self`
    selfs: dict[str, list[Pair]] = field(default_factory=lambda: defaultdict(list))
    _relevant: dict[Pair, frozenset[Pair]] = field(default_factory=dict)

    @classmethod
    def build(cls, schema: CompiledSchema) -> ReverseIndex:
        index = cls()
        for (type_name, name), relation in schema.relations.items():
            target = (type_name, name)
            for allowed in relation.allowed:
                kind = (allowed.type, allowed.relation)
                if target not in index.direct[kind]:
                    index.direct[kind].append(target)
                if allowed.relation:
                    edge = Edge("subject_set", kind, target, name, allowed.relation)
                    if edge not in index.consumers[kind]:
                        index.consumers[kind].append(edge)
        for (type_name, name), permission in schema.permissions.items():
            target = (type_name, name)
            for leaf in _needed_leaves(permission.expr):
                index._add_leaf(schema, target, leaf)
        return index

    def _add_leaf(self, schema: CompiledSchema, target: Pair, leaf: Expr) -> None:
        type_name = target[0]
        if isinstance(leaf, RelationRef):
            self._edge(Edge("ref", (type_name, leaf.name), target))
        elif isinstance(leaf, SelfRef):
            if target not in self.selfs[type_name]:
                self.selfs[type_name].append(target)
        elif isinstance(leaf, Arrow):
            relation = schema.relations.get((type_name, leaf.relation))
            for allowed in relation.allowed if relation else ():
                if allowed.wildcard or schema.member(allowed.type, leaf.target) is None:
                    continue
                source = (allowed.type, leaf.target)
                self._edge(Edge("arrow", source, target, leaf.relation, None))

    def _edge(self, edge: Edge) -> None:
        if edge not in self.consumers[edge.source]:
            self.consumers[edge.source].append(edge)

    def relevant(self, target: Pair) -> frozenset[Pair]:
        """Pairs from which candidates can flow into `target`."""
        found = self._relevant.get(target)
        if found is not None:
            return found
        feeders: dict[Pair, set[Pair]] = defaultdict(set)
        for edges in self.consumers.values():
            for edge in edges:
                feeders[edge.target].add(edge.source)
        seen = {target}
        queue = deque([target])
        while queue:
            for source in feeders[queue.popleft()]:
                if source not in seen:
                    seen.add(source)
                    queue.append(source)
        found = frozenset(seen)
        self._relevant[target] = found
        return found
