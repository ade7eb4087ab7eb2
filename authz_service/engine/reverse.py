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
superset of the answer (caveats are ignored).

Each edge also says whether it *proves* its target (`proofs`): a leaf reached from the
permission's root through unions only makes the permission true wherever the leaf is
true, so an id proven for the source, carried by a relationship without a caveat that
the schema allows, is proven for the target. A leaf in the base of an exclusion proves
the permission only where what is subtracted is false: its proof carries those
subtracted relations or permissions as guards, and holds for the ids that are not
candidates of any guard (the candidate walk is a superset of every non-false answer).
Leaves under an intersection, and `.all()` arrows, prove nothing. Unproven candidates
are decided by Check.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Literal

from authz_service.model import WILDCARD, Relationship
from authz_service.schema.ast import (
    Arrow,
    Exclusion,
    Expr,
    Intersection,
    Nil,
    RelationRef,
    SelfRef,
    Union,
)
from authz_service.schema.compiled import CompiledSchema

__all__ = [
    "UNION_ONLY",
    "Edge",
    "Guards",
    "Pair",
    "PlainKind",
    "Proofs",
    "ReverseIndex",
    "plain_kind",
]

Pair = tuple[str, str]
Guards = frozenset[Pair]
"""Relations or permissions of the target's type that an exclusion subtracts on the way
from the target's root to a leaf: the leaf proves the target only where all are false."""
Proofs = frozenset[Guards]
"""The ways a leaf proves its target, one set of guards each; empty: it proves nothing."""
UNION_ONLY: Proofs = frozenset({frozenset()})
_Leaf = tuple[Expr, Guards | None]
PlainKind = tuple[str, bool, str | None]
"""(subject type, wildcard, subject relation or None for a wildcard)."""


def plain_kind(rel: Relationship) -> PlainKind:
    """How `ReverseIndex.plain` names the subject of a relationship without a caveat:
    the schema allows it (expiring or not) exactly when its relation's set holds this,
    the rule of `schema.relationships.allows` with no caveat and expiry set aside."""
    subject = rel.subject
    wildcard = subject.id == WILDCARD
    return (subject.type, wildcard, None if wildcard else subject.relation)


@dataclass(frozen=True, slots=True)
class Edge:
    kind: Literal["ref", "subject_set", "arrow"]
    source: Pair
    target: Pair
    relation: str = ""  # subject_set: the target relation; arrow: the tupleset relation
    subject_relation: str | None = None  # subject_set: `r` of `X#r`; arrow: None (any)


def _needed_leaves(expr: Expr, type_name: str, guards: Guards | None) -> list[_Leaf]:
    """The leaves a resource needs to be true somewhere, each with the guards under which
    it proves `expr` (None: it never does on its own)."""
    if isinstance(expr, Union):
        return [
            leaf for child in expr.children for leaf in _needed_leaves(child, type_name, guards)
        ]
    if isinstance(expr, Intersection):
        return _needed_leaves(expr.children[0], type_name, None) if expr.children else []
    if isinstance(expr, Exclusion):
        subtracted = _subtracted(expr.subtracted, type_name)
        inner = None if guards is None or subtracted is None else guards | subtracted
        return _needed_leaves(expr.base, type_name, inner)
    if isinstance(expr, Arrow) and expr.mode == "all":
        return [(expr, None)]  # every relationship must lead to a true target
    if isinstance(expr, RelationRef | Arrow | SelfRef):
        return [(expr, guards)]
    return []


def _subtracted(expr: Expr, type_name: str) -> Guards | None:
    """What an exclusion subtracts, as pairs whose candidates cover every resource where
    it is not false; None when it is not a union of relations and permissions (an arrow
    would need candidates of its own)."""
    if isinstance(expr, RelationRef):
        return frozenset({(type_name, expr.name)})
    if isinstance(expr, Nil):
        return frozenset()
    if isinstance(expr, Union):
        found: set[Pair] = set()
        for child in expr.children:
            part = _subtracted(child, type_name)
            if part is None:
                return None
            found |= part
        return frozenset(found)
    return None


def _with(proofs: Proofs, guards: Guards | None) -> Proofs:
    if guards is None or frozenset() in proofs:
        return proofs
    return UNION_ONLY if not guards else proofs | {guards}


@dataclass(slots=True)
class ReverseIndex:
    consumers: dict[Pair, list[Edge]] = field(default_factory=lambda: defaultdict(list))
    # (subject type, subject relation) -> relations whose relationships may name it directly
    direct: dict[Pair, list[Pair]] = field(default_factory=lambda: defaultdict(list))
    # subject type -> permissions of that type that contain `self`
    selfs: dict[str, list[Pair]] = field(default_factory=lambda: defaultdict(list))
    # how an edge, or a permission's `self`, proves its target (absent: it does not)
    proofs: dict[Edge, Proofs] = field(default_factory=dict)
    # relation -> the subjects it allows without a caveat, as `plain_kind` spells them
    plain: dict[Pair, frozenset[PlainKind]] = field(default_factory=dict)
    self_proofs: dict[Pair, Proofs] = field(default_factory=dict)
    _relevant: dict[Pair, frozenset[Pair]] = field(default_factory=dict)
    _guards: dict[Pair, frozenset[Guards]] = field(default_factory=dict)

    @classmethod
    def build(cls, schema: CompiledSchema) -> ReverseIndex:
        index = cls()
        for (type_name, name), relation in schema.relations.items():
            target = (type_name, name)
            index.plain[target] = frozenset(
                (a.type, a.wildcard, None if a.wildcard else a.relation)
                for a in relation.allowed
                if a.caveat is None
            )
            for allowed in relation.allowed:
                kind = (allowed.type, allowed.relation)
                if target not in index.direct[kind]:
                    index.direct[kind].append(target)
                if allowed.relation:
                    # A relation is a union of its relationships: each one proves it.
                    edge = Edge("subject_set", kind, target, name, allowed.relation)
                    index._edge(edge, frozenset())
        for (type_name, name), permission in schema.permissions.items():
            target = (type_name, name)
            for leaf, guards in _needed_leaves(permission.expr, type_name, frozenset()):
                index._add_leaf(schema, target, leaf, guards)
        return index

    def _add_leaf(
        self, schema: CompiledSchema, target: Pair, leaf: Expr, guards: Guards | None
    ) -> None:
        type_name = target[0]
        if isinstance(leaf, RelationRef):
            self._edge(Edge("ref", (type_name, leaf.name), target), guards)
        elif isinstance(leaf, SelfRef):
            if target not in self.selfs[type_name]:
                self.selfs[type_name].append(target)
            self.self_proofs[target] = _with(self.self_proofs.get(target, frozenset()), guards)
        elif isinstance(leaf, Arrow):
            relation = schema.relations.get((type_name, leaf.relation))
            for allowed in relation.allowed if relation else ():
                if allowed.wildcard or schema.member(allowed.type, leaf.target) is None:
                    continue
                source = (allowed.type, leaf.target)
                self._edge(Edge("arrow", source, target, leaf.relation, None), guards)

    def _edge(self, edge: Edge, guards: Guards | None) -> None:
        if edge not in self.consumers[edge.source]:
            self.consumers[edge.source].append(edge)
        self.proofs[edge] = _with(self.proofs.get(edge, frozenset()), guards)

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

    def guards(self, target: Pair) -> frozenset[Guards]:
        """The guard sets under which some leaf proves `target` (empty ones excluded). A
        set that depends on `target` itself (an exclusion on a cycle) is left out: such a
        subtraction has no fixed meaning, and its candidates are decided by Check."""
        found = self._guards.get(target)
        if found is not None:
            return found
        alternatives: set[Guards] = set(self.self_proofs.get(target, frozenset()))
        for edges in self.consumers.values():
            for edge in edges:
                if edge.target == target:
                    alternatives |= self.proofs.get(edge, frozenset())
        found = frozenset(
            guards
            for guards in alternatives
            if guards and not any(target in self.relevant(pair) for pair in guards)
        )
        self._guards[target] = found
        return found
