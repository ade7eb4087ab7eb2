"""The reach of a grant: every (resource, permission) a binding or a relationship opens.

The rule. A grant gives a set of starting points, (object, name):

- a binding of role R on scope X: every object O that is X or below X along `inherit`
  relations (tenant-wide: every object of the role's types named in the tenant's
  relationships), with every `T.name` of R where T is O's type;
- a relationship `O#rel@S`: (O, rel).

From a point (O, n) the grant also reaches, to a fixpoint, wherever n alone suffices:

- (O, q) for each permission q of O's type in which n appears as a union branch or as the
  base of an exclusion (recursively; an intersection needs its other branches too, so it
  is not reached);
- (U, q) for each permission q of type U with an arrow `rel->n` (or `rel.any(n)`) in such
  a position, and each relationship `U#rel@O`;
- (U, R) for each relationship `U#R@O#n` (O#n used as a subject set), and the points of
  every binding whose subject is `O#n`.

Caveats, expiration of future relationships and exclusions are not evaluated: a pair is
reported if the grant is on a path that can allow it, even if another grant allows it too
or an exclusion removes it for some subjects. Only permissions are reported (relations
are data), in schema order.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from authz_service.errors import LimitExceeded
from authz_service.model import ObjectRef, RelationshipFilter, SubjectRef
from authz_service.schema.ast import Arrow, Exclusion, Expr, Intersection, RelationRef, Union
from authz_service.schema.compiled import CompiledSchema
from authz_service.tenancy.encoding import BINDING, SUBJECT_OF, Binding, Pair, bindings_from
from authz_service.tenancy.hierarchy import Hierarchy, ReadFn, descendants

__all__ = [
    "Reach",
    "ReachRules",
    "binding_starts",
    "bindings_of_subject",
    "reach",
    "reach_order",
]

Starts = Callable[[Binding], Awaitable[Iterable[tuple[ObjectRef, str]]]]
BindingsOf = Callable[[SubjectRef], Awaitable[list[Binding]]]


def reach_order(obj: ObjectRef) -> tuple[str, str]:
    """Where a resource stands in a Reach: by type, then id. Not `type:id` as text, which
    puts `doc2:x` and `doc/abc:x` before `doc:x`; a page resumes with this key too."""
    return (obj.type, obj.id)


def _sufficient(expr: Expr) -> list[Expr]:
    if isinstance(expr, Union):
        return [leaf for child in expr.children for leaf in _sufficient(child)]
    if isinstance(expr, Intersection):
        return _sufficient(expr.children[0]) if len(expr.children) == 1 else []
    if isinstance(expr, Exclusion):
        return _sufficient(expr.base)
    if isinstance(expr, RelationRef) or (isinstance(expr, Arrow) and expr.mode == "any"):
        return [expr]
    return []


@dataclass(frozen=True, slots=True)
class ReachRules:
    """The schema read as "what does holding (type, name) suffice for". Built once per
    schema version."""

    same_object: Mapping[Pair, tuple[str, ...]]
    arrows: Mapping[Pair, tuple[tuple[str, str, str], ...]]  # -> (type, relation, permission)
    subject_sets: Mapping[Pair, tuple[Pair, ...]]  # -> (type, relation)

    @classmethod
    def build(cls, schema: CompiledSchema) -> ReachRules:
        same: dict[Pair, list[str]] = defaultdict(list)
        arrows: dict[Pair, list[tuple[str, str, str]]] = defaultdict(list)
        sets: dict[Pair, list[Pair]] = defaultdict(list)
        for (type_name, name), permission in schema.permissions.items():
            for leaf in _sufficient(permission.expr):
                if isinstance(leaf, RelationRef):
                    same[(type_name, leaf.name)].append(name)
                elif isinstance(leaf, Arrow):
                    relation = schema.relations.get((type_name, leaf.relation))
                    for allowed in relation.allowed if relation else ():
                        if not allowed.wildcard and not allowed.relation:
                            arrows[(allowed.type, leaf.target)].append(
                                (type_name, leaf.relation, name)
                            )
        for (type_name, name), relation in schema.relations.items():
            for allowed in relation.allowed:
                if allowed.relation:
                    sets[(allowed.type, allowed.relation)].append((type_name, name))
        return cls(
            {k: tuple(v) for k, v in same.items()},
            {k: tuple(dict.fromkeys(v)) for k, v in arrows.items()},
            {k: tuple(dict.fromkeys(v)) for k, v in sets.items()},
        )


@dataclass(frozen=True, slots=True)
class Reach:
    """Reached resources, sorted by (type, id), each with its permissions in schema order."""

    resources: tuple[tuple[ObjectRef, tuple[str, ...]], ...]

    @property
    def resource_count(self) -> int:
        return len(self.resources)

    @property
    def permission_count(self) -> int:
        return sum(len(p) for _, p in self.resources)


async def binding_starts(
    read: ReadFn,
    hierarchy: Hierarchy,
    binding: Binding,
    pairs: Iterable[Pair],
    *,
    max_depth: int,
    max_objects: int,
) -> list[tuple[ObjectRef, str]]:
    """The starting points of a binding whose role grants `pairs`."""
    by_type: dict[str, list[str]] = defaultdict(list)
    for type_name, name in sorted(pairs):
        by_type[type_name].append(name)
    types = frozenset(by_type)
    if binding.scope is None:
        objects: set[ObjectRef] = set()
        for type_name in sorted(types):
            objects.update(r.resource for r in await read(RelationshipFilter(type_name)))
            objects.update(
                r.subject.object
                for r in await read(RelationshipFilter(subject_type=type_name))
                if not r.subject.is_wildcard
            )
        found = sorted(objects, key=lambda o: (o.type, o.id))
    else:
        found = await descendants(
            read,
            hierarchy,
            binding.scope,
            max_depth=max_depth,
            max_objects=max_objects,
            wanted=types,
        )
    return [(obj, name) for obj in found for name in by_type.get(obj.type, ())]


async def reach(
    read: ReadFn,
    schema: CompiledSchema,
    rules: ReachRules,
    starts: Iterable[tuple[ObjectRef, str]],
    bindings_of: BindingsOf,
    binding_starts_of: Starts,
    *,
    max_pairs: int,
) -> Reach:
    """Propagate `starts` to a fixpoint (see the module docstring)."""
    reached: dict[ObjectRef, set[str]] = defaultdict(set)
    queue: deque[tuple[ObjectRef, str]] = deque()
    count = 0

    def add(obj: ObjectRef, name: str) -> None:
        nonlocal count
        if name in reached[obj]:
            return
        reached[obj].add(name)
        queue.append((obj, name))
        count += 1
        if count > max_pairs:
            raise LimitExceeded(f"the grant reaches more than `{max_pairs}` permissions")

    for obj, name in starts:
        add(obj, name)
    while queue:
        obj, name = queue.popleft()
        pair = (obj.type, name)
        for permission in rules.same_object.get(pair, ()):
            add(obj, permission)
        for type_name, relation, permission in rules.arrows.get(pair, ()):
            flt = RelationshipFilter(type_name, None, relation, obj.type, (obj.id,), "")
            for rel in await read(flt):
                add(rel.resource, permission)
        for type_name, relation in rules.subject_sets.get(pair, ()):
            flt = RelationshipFilter(type_name, None, relation, obj.type, (obj.id,), name)
            for rel in await read(flt):
                add(rel.resource, relation)
        for binding in await bindings_of(SubjectRef(obj.type, obj.id, name)):
            for start in await binding_starts_of(binding):
                add(*start)
    resources = []
    for obj in sorted(reached, key=reach_order):
        definition = schema.definitions.get(obj.type)
        names = reached[obj]
        permissions = tuple(
            p.name for p in (definition.permissions if definition else ()) if p.name in names
        )
        if permissions:
            resources.append((obj, permissions))
    return Reach(tuple(resources))


async def bindings_of_subject(read: ReadFn, subject: SubjectRef) -> list[Binding]:
    """Bindings whose subject is exactly `subject`, by id."""
    flt = RelationshipFilter(
        BINDING, None, SUBJECT_OF, subject.type, (subject.id,), subject.relation
    )
    ids = tuple(sorted({rel.resource.id for rel in await read(flt)}))
    if not ids:
        return []
    found = bindings_from(await read(RelationshipFilter(BINDING, ids)))
    return [found[i] for i in sorted(found)]
