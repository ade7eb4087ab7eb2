"""Refusing a binding that would make a subject set depend on itself.

A binding whose subject is a subject set (`group:eng#member`) is a cycle when its role
grants that very membership on a scope covering `group:eng` (tenant-wide, the group, or
a resource above it), directly or through a chain of other bindings: membership in
`group:eng#member` would then hold only because it holds. The engine would cut such a
cycle at run time (the least fixpoint grants nothing), so it is meaningless data and is
refused when written, and so is a change of a role under which one of its bindings would
be one (`role_cycle`). "Grants that membership" includes relations and permissions of the
same object it refers to (`permission member = direct + admin`); cycles that go through
arrows to other objects are left to the engine.
"""

from __future__ import annotations

from authz_service.model import ObjectRef, RelationshipFilter, SubjectRef
from authz_service.schema.ast import Exclusion, Intersection, RelationRef, Union
from authz_service.schema.compiled import CompiledSchema
from authz_service.tenancy.encoding import BINDING, ROLE, ROLE_OF, Binding, bindings_from
from authz_service.tenancy.hierarchy import Hierarchy, ReadFn, ancestors
from authz_service.tenancy.index import TenantIndex, role_pairs

__all__ = ["binding_cycle", "role_cycle"]


async def binding_cycle(
    read: ReadFn,
    schema: CompiledSchema,
    hierarchy: Hierarchy,
    index: TenantIndex,
    new: Binding,
    *,
    max_depth: int,
) -> str | None:
    """How `new` would close a cycle (for the error message), or None."""
    if not new.subject.relation:
        return None
    granted = role_pairs(schema, index.custom, new.role)
    above: dict[ObjectRef, set[ObjectRef]] = {}

    async def covers(binding: Binding, obj: ObjectRef) -> bool:
        if binding.scope is None or binding.scope == obj:
            return True
        if obj not in above:
            above[obj] = await ancestors(read, hierarchy, obj, max_depth=max_depth)
        return binding.scope in above[obj]

    chain: dict[SubjectRef, SubjectRef | None] = {new.subject: None}
    frontier = [new.subject]
    while frontier:
        current = frontier.pop()
        names = _depends_on(schema, current.type, current.relation)
        obj = current.object
        if any((obj.type, n) in granted for n in names) and await covers(new, obj):
            path = [current]
            while (parent := chain[path[-1]]) is not None:
                path.append(parent)
            shown = " <- ".join(f"`{s}`" for s in path)
            return f"role `{new.role}` on `{new.scope or 'the tenant'}` grants {shown}"
        roles = frozenset(r for n in names for r in index.roles_granting((obj.type, n)))
        for binding in await _bindings_of_roles(read, index, roles):
            subject = binding.subject
            if subject.relation and subject not in chain and await covers(binding, obj):
                chain[subject] = current
                frontier.append(subject)
    return None


async def role_cycle(
    read: ReadFn,
    schema: CompiledSchema,
    hierarchy: Hierarchy,
    index: TenantIndex,
    role: str,
    *,
    max_depth: int,
) -> tuple[Binding, str] | None:
    """A binding of `role` that closes a cycle when the role grants what `index` says,
    and how; or None. A change of one role can only close cycles through its own
    bindings, so checking each of them as if it were new finds every one."""
    for binding in await _bindings_of_roles(read, index, frozenset({role})):
        cycle = await binding_cycle(read, schema, hierarchy, index, binding, max_depth=max_depth)
        if cycle:
            return binding, cycle
    return None


async def _bindings_of_roles(
    read: ReadFn, index: TenantIndex, roles: frozenset[str]
) -> list[Binding]:
    if not roles:
        return []
    if index.bindings is not None:
        return [b for r in sorted(roles) for b in index.bindings.get(r, ())]
    flt = RelationshipFilter(BINDING, None, ROLE_OF, ROLE, tuple(sorted(roles)), "")
    ids = tuple(sorted({rel.resource.id for rel in await read(flt)}))
    if not ids:
        return []
    found = bindings_from(await read(RelationshipFilter(BINDING, ids)))
    return [found[i] for i in sorted(found)]


def _depends_on(schema: CompiledSchema, type_name: str, name: str) -> set[str]:
    """`name` and every relation or permission of the same object it refers to."""
    found = {name}
    stack = [name]
    while stack:
        permission = schema.permissions.get((type_name, stack.pop()))
        exprs = [permission.expr] if permission else []
        while exprs:
            expr = exprs.pop()
            if isinstance(expr, RelationRef) and expr.name not in found:
                found.add(expr.name)
                stack.append(expr.name)
            elif isinstance(expr, Union | Intersection):
                exprs.extend(expr.children)
            elif isinstance(expr, Exclusion):
                exprs.extend([expr.base, expr.subtracted])
    return found
