"""A naive reference evaluator: the oracle the engine is compared with.

Obviously correct rather than fast. No memo, no cache, no store, no concurrency, nothing
shared with `authz_service.engine`: it reads the schema AST and a list of relationships.

For one subject and one context it computes the value of EVERY (object, relation or
permission) of a small world at once, as a least fixpoint:

- values are Kleene three-valued (false < unknown(missing names) < true);
- the schema's (type, name) pairs are split into strongly connected components and
  solved dependencies-first; inside a component, all values start false and every
  equation is re-evaluated until nothing changes. This is the least fixpoint because
  worlds given to it have no exclusion inside a component (checked: `ValueError`), so
  everything iterated together is monotone.

Semantics (SpiceDB's):
- a relationship exists iff it is not expired (`expires_at > now`); its caveat's value
  uses the request context overridden by the relationship's stored context;
- relation `r` of `o` for subject `s`: OR over relationships `o#r@t` of caveat AND
  (t == s, or t is `type:*` and s is a plain object of that type, or t is a subject set
  `x#m` and s has `m` on `x`);
- `s` itself being the userset `o#r` is true; `self` is true iff s is `o` itself;
- arrows: OR (`.all`: AND, and false with no relationships) over relationships `o#rel@t`
  of caveat AND (target on t's object; false if t's type has no such member);
- `+` OR, `&` AND, `-` AND NOT, `nil` false.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from authz_service.model import ObjectRef, Relationship, SubjectRef
from authz_service.schema.ast import (
    Arrow,
    Exclusion,
    Expr,
    Intersection,
    Nil,
    RelationRef,
    Schema,
    SelfRef,
    Union,
)

Value = tuple[int, frozenset[str]]  # 0 false, 1 unknown (missing names), 2 true
F: Value = (0, frozenset())
T: Value = (2, frozenset())
CaveatFn = Callable[[Mapping[str, Any]], Value]
Node = tuple[ObjectRef, str]
Pair = tuple[str, str]


def v_or(a: Value, b: Value) -> Value:
    if a[0] == 2 or b[0] == 2:
        return T
    if a[0] == 1 and b[0] == 1:
        return (1, a[1] | b[1])
    return a if a[0] == 1 else b


def v_and(a: Value, b: Value) -> Value:
    if a[0] == 0 or b[0] == 0:
        return F
    if a[0] == 1 and b[0] == 1:
        return (1, a[1] | b[1])
    return a if a[0] == 1 else b


def v_not(a: Value) -> Value:
    return a if a[0] == 1 else (T if a[0] == 0 else F)


@dataclass
class World:
    schema: Schema
    relationships: list[Relationship]
    now: datetime
    caveats: Mapping[str, CaveatFn]
    objects: Mapping[str, list[str]]  # every object of the world, by type
    _live: list[Relationship] = field(init=False)

    def __post_init__(self) -> None:
        self._live = [
            r for r in self.relationships if r.expires_at is None or r.expires_at > self.now
        ]

    # -- the schema as a graph of (type, name) pairs ----------------------------------

    def members(self, type_name: str) -> list[str]:
        d = self.schema.definition(type_name)
        if d is None:
            return []
        return [r.name for r in d.relations] + [p.name for p in d.permissions]

    def _edges(self) -> list[tuple[Pair, Pair, bool]]:
        """(from, to, negative): `from`'s value reads `to`'s."""
        edges: list[tuple[Pair, Pair, bool]] = []
        for d in self.schema.definitions:
            for r in d.relations:
                for a in r.allowed:
                    if a.relation:
                        edges.append(((d.name, r.name), (a.type, a.relation), False))
            for p in d.permissions:
                for leaf, negative in _leaves(p.expr, False):
                    if isinstance(leaf, RelationRef):
                        edges.append(((d.name, p.name), (d.name, leaf.name), negative))
                    elif isinstance(leaf, Arrow):
                        rel = d.relation(leaf.relation)
                        for a in rel.allowed if rel else ():
                            edges.append(((d.name, p.name), (a.type, leaf.target), negative))
        return edges

    def components(self) -> list[list[Pair]]:
        """Strongly connected components, each after every component it reads."""
        pairs = [(d.name, m) for d in self.schema.definitions for m in self.members(d.name)]
        edges = self._edges()
        reach = {p: {p} for p in pairs}
        changed = True
        while changed:  # transitive closure, naively
            changed = False
            for src, dst, _ in edges:
                if dst in reach and not reach[dst] <= reach[src]:
                    reach[src] |= reach[dst]
                    changed = True
        for src, dst, negative in edges:
            if negative and dst in reach and src in reach[dst]:
                raise ValueError(f"exclusion inside a cycle: {src} -> {dst}")
        comps: list[list[Pair]] = []
        placed: set[Pair] = set()
        while len(placed) < len(pairs):
            for p in pairs:
                if p in placed:
                    continue
                comp = [q for q in pairs if q in reach[p] and p in reach[q]]
                if all(r in placed or r in comp for r in reach[p]):
                    comps.append(comp)
                    placed.update(comp)
        return comps

    # -- evaluation ---------------------------------------------------------------------

    def solve(self, subject: SubjectRef, context: Mapping[str, Any]) -> dict[Node, Value]:
        values: dict[Node, Value] = {}
        for comp in self.components():
            nodes = [(ObjectRef(t, i), m) for t, m in comp for i in self.objects.get(t, [])]
            for n in nodes:
                values[n] = F
            changed = True
            while changed:
                changed = False
                for n in nodes:
                    v = self._node(n, subject, context, values)
                    if v != values[n]:
                        values[n] = v
                        changed = True
        return values

    def _caveat(self, rel: Relationship, context: Mapping[str, Any]) -> Value:
        if rel.caveat is None:
            return T
        merged = dict(context)
        merged.update(rel.caveat.context)
        return self.caveats[rel.caveat.name](merged)

    def _node(
        self, node: Node, s: SubjectRef, ctx: Mapping[str, Any], values: dict[Node, Value]
    ) -> Value:
        obj, name = node
        if s.relation == name and s.type == obj.type and s.id == obj.id:
            return T
        d = self.schema.definition(obj.type)
        assert d is not None
        perm = d.permission(name)
        if perm is not None:
            return self._expr(perm.expr, obj, s, ctx, values)
        result = F
        for rel in self._live:
            if rel.resource != obj or rel.relation != name:
                continue
            t = rel.subject
            if t == s or (t.id == "*" and t.type == s.type and not s.relation):
                hit = T
            elif t.relation:
                hit = values.get((t.object, t.relation), F)
            else:
                hit = F
            result = v_or(result, v_and(self._caveat(rel, ctx), hit))
        return result

    def _expr(
        self,
        e: Expr,
        obj: ObjectRef,
        s: SubjectRef,
        ctx: Mapping[str, Any],
        values: dict[Node, Value],
    ) -> Value:
        if isinstance(e, Nil):
            return F
        if isinstance(e, SelfRef):
            return T if (not s.relation and s.type == obj.type and s.id == obj.id) else F
        if isinstance(e, RelationRef):
            return values.get((obj, e.name), F)
        if isinstance(e, Union):
            result = F
            for c in e.children:
                result = v_or(result, self._expr(c, obj, s, ctx, values))
            return result
        if isinstance(e, Intersection):
            result = T
            for c in e.children:
                result = v_and(result, self._expr(c, obj, s, ctx, values))
            return result
        if isinstance(e, Exclusion):
            base = self._expr(e.base, obj, s, ctx, values)
            return v_and(base, v_not(self._expr(e.subtracted, obj, s, ctx, values)))
        assert isinstance(e, Arrow)
        steps = [
            v_and(self._caveat(rel, ctx), values.get((rel.subject.object, e.target), F))
            for rel in self._live
            if rel.resource == obj and rel.relation == e.relation
        ]
        if e.mode == "all":
            result = T if steps else F
            for step in steps:
                result = v_and(result, step)
            return result
        result = F
        for step in steps:
            result = v_or(result, step)
        return result

    def near_cycle(self) -> set[Node]:
        """Nodes from which a cycle of (object, name) nodes in the data is reachable."""
        succ: dict[Node, set[Node]] = {}
        for t, ids in self.objects.items():
            for i in ids:
                obj = ObjectRef(t, i)
                for m in self.members(t):
                    succ[(obj, m)] = set(self._successors(obj, m))
        reach = {n: set(nxt) for n, nxt in succ.items()}
        changed = True
        while changed:  # transitive closure, naively
            changed = False
            for found in reach.values():
                more = set().union(*(reach.get(m, set()) for m in found)) - found
                if more:
                    found.update(more)
                    changed = True
        on_cycle = {n for n, found in reach.items() if n in found}
        return {n for n, found in reach.items() if n in on_cycle or found & on_cycle}

    def _successors(self, obj: ObjectRef, name: str) -> Iterable[Node]:
        d = self.schema.definition(obj.type)
        assert d is not None
        perm = d.permission(name)
        if perm is None:
            for rel in self._live:
                if rel.resource == obj and rel.relation == name and rel.subject.relation:
                    yield (rel.subject.object, rel.subject.relation)
            return
        for leaf, _ in _leaves(perm.expr, False):
            if isinstance(leaf, RelationRef):
                yield (obj, leaf.name)
            elif isinstance(leaf, Arrow):
                for rel in self._live:
                    if rel.resource == obj and rel.relation == leaf.relation:
                        yield (rel.subject.object, leaf.target)


def _leaves(e: Expr, negative: bool) -> list[tuple[Expr, bool]]:
    if isinstance(e, Union | Intersection):
        return [x for c in e.children for x in _leaves(c, negative)]
    if isinstance(e, Exclusion):
        return _leaves(e.base, negative) + _leaves(e.subtracted, True)
    return [(e, negative)]


def decision(value: Value) -> str:
    return ("DENIED", "CONDITIONAL", "ALLOWED")[value[0]]
