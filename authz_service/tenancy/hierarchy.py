"""The resource hierarchy a schema declares with `inherit <relation>`.

`definition document { relation folder: folder  inherit folder }` makes every folder that
`document:x#folder` points to a parent of `document:x`: a binding on the folder applies
to the document too, and to everything below it. Walks go up (a resource's ancestors:
which bindings cover it) or down (a scope's descendants: what a binding reaches), one
read per (type, relation) per level, bounded by a depth and a size limit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from authz_service.errors import LimitExceeded
from authz_service.model import ObjectRef, Relationship, RelationshipFilter
from authz_service.schema.compiled import CompiledSchema

__all__ = ["Hierarchy", "ReadFn", "ancestors", "descendants"]

ReadFn = Callable[[RelationshipFilter], Awaitable[Sequence[Relationship]]]
"""Live relationships matching a filter, at the snapshot the walk runs at."""

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """The schema's `inherit` edges, both ways, with the type-level closures precomputed
    (built once per schema version)."""

    parents: Mapping[str, tuple[str, ...]]  # type -> its `inherit` relations
    children: Mapping[str, tuple[tuple[str, str], ...]]  # parent type -> (child type, rel)
    above: Mapping[str, frozenset[str]]  # type -> types that can be above it
    below: Mapping[str, frozenset[str]]  # type -> types that can be below it

    @classmethod
    def build(cls, schema: CompiledSchema) -> Hierarchy:
        parents: dict[str, tuple[str, ...]] = {}
        children: dict[str, list[tuple[str, str]]] = defaultdict(list)
        up: dict[str, set[str]] = defaultdict(set)
        for name, definition in schema.definitions.items():
            if definition.inherits:
                parents[name] = definition.inherits
            for relation_name in definition.inherits:
                relation = definition.relation(relation_name)
                for allowed in relation.allowed if relation else ():
                    edge = (name, relation_name)
                    if edge not in children[allowed.type]:
                        children[allowed.type].append(edge)
                    up[name].add(allowed.type)
        down = {t: {child for child, _ in edges} for t, edges in children.items()}
        types = list(schema.definitions)
        return cls(
            parents,
            {t: tuple(edges) for t, edges in children.items()},
            {t: _closure(t, up) for t in types},
            {t: _closure(t, down) for t in types},
        )

    def ancestor_types(self, type_name: str) -> frozenset[str]:
        """Types that can be above `type_name` (not including it, unless on a cycle)."""
        return self.above.get(type_name, frozenset())

    def descendant_types(self, type_name: str) -> frozenset[str]:
        return self.below.get(type_name, frozenset())


def _closure(start: str, edges: dict[str, set[str]]) -> frozenset[str]:
    seen: set[str] = set()
    stack = list(edges.get(start, ()))
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(edges.get(current, ()))
    return frozenset(seen)


async def ancestors(
    read: ReadFn, hierarchy: Hierarchy, start: ObjectRef, *, max_depth: int
) -> set[ObjectRef]:
    """Every object above `start` (caveats on the parent relationships are ignored: a
    superset, for candidates and checks at write time)."""
    found: set[ObjectRef] = set()
    frontier = [start]
    for _ in range(max_depth):
        following: list[ObjectRef] = []
        for obj in frontier:
            for relation in hierarchy.parents.get(obj.type, ()):
                for rel in await read(RelationshipFilter(obj.type, (obj.id,), relation)):
                    parent = rel.subject.object
                    if parent not in found and parent != start:
                        found.add(parent)
                        following.append(parent)
        if not following:
            return found
        frontier = following
    raise LimitExceeded(f"the hierarchy above `{start}` is deeper than `{max_depth}` levels")


async def descendants(
    read: ReadFn,
    hierarchy: Hierarchy,
    root: ObjectRef,
    *,
    max_depth: int,
    max_objects: int,
    wanted: frozenset[str] | None = None,
) -> list[ObjectRef]:
    """`root` and every object below it, breadth first. With `wanted`, only branches that
    can lead to objects of those types are walked (the others are still below `root` but
    cannot matter to the caller)."""
    useful = None
    if wanted is not None:
        useful = set(wanted) | {t for t, below in hierarchy.below.items() if below & wanted}
    found = [root]
    seen = {root}
    frontier = [root]
    for _ in range(max_depth):
        by_type: dict[str, list[str]] = defaultdict(list)
        for obj in frontier:
            by_type[obj.type].append(obj.id)
        following: list[ObjectRef] = []
        for parent_type, ids in sorted(by_type.items()):
            for child_type, relation in hierarchy.children.get(parent_type, ()):
                if useful is not None and child_type not in useful:
                    continue
                for start in range(0, len(ids), _CHUNK):
                    chunk = tuple(sorted(ids[start : start + _CHUNK]))
                    flt = RelationshipFilter(child_type, None, relation, parent_type, chunk, "")
                    for rel in await read(flt):
                        if rel.resource not in seen:
                            seen.add(rel.resource)
                            found.append(rel.resource)
                            following.append(rel.resource)
            if len(found) > max_objects:
                raise LimitExceeded(
                    f"more than `{max_objects}` resources are below `{root}`; narrow the scope"
                )
        if not following:
            return found
        frontier = following
    raise LimitExceeded(f"the hierarchy below `{root}` is deeper than `{max_depth}` levels")
