"""The semantics: evaluating one subproblem of the check graph.

`evaluate` answers "does `subject` have `relation` on `resource`" for one node. A nested
question (a subject set, a computed userset, an arrow's target) is never answered here
directly but dispatched through the request's chain, so the memo, cycle detection,
limits and any cache apply to every node. Evaluation is sequential and short-circuits
(union stops at the first true branch, intersection at the first false one, trying the
operands answered from the object's own relationships first; an exclusion whose base is
false does not evaluate what it subtracts), so what cannot change the answer is never
evaluated: not even a cycle that would not settle, as in SpiceDB.
"""

from __future__ import annotations

from authz_service.engine import explain as ex
from authz_service.engine.accumulate import Accumulator
from authz_service.engine.dispatch import Subproblem, SubResult
from authz_service.engine.tristate import FALSE, TRUE, Tri
from authz_service.engine.types import ExplainNode
from authz_service.model import WILDCARD, Relationship, RelationshipFilter
from authz_service.schema.ast import (
    Arrow,
    Exclusion,
    Expr,
    Intersection,
    Nil,
    Permission,
    Relation,
    RelationRef,
    SelfRef,
    Union,
)

__all__ = ["LocalDispatcher", "allowed_by_schema", "evaluate"]


class LocalDispatcher:
    """Evaluates a subproblem in process; its children go back through the request's
    dispatch chain."""

    async def dispatch(self, req: Subproblem) -> SubResult:
        return await evaluate(req)


async def evaluate(req: Subproblem) -> SubResult:
    subject, resource = req.subject, req.resource
    if (
        subject.relation == req.relation
        and subject.id == resource.id
        and subject.type == resource.type
    ):
        # The subject is this very userset (`doc:x#view` checked against `doc:x#view`).
        return Accumulator(req.request.explain).done_node(req, "alias", req.relation, TRUE)
    schema = req.snapshot.schema
    permission = schema.permissions.get((resource.type, req.relation))
    if permission is not None:
        return await _permission(req, permission)
    relation = schema.relations.get((resource.type, req.relation))
    if relation is not None:
        return await _relation(req, relation)
    reason = f"`{resource.type}` has no relation or permission `{req.relation}`"
    return Accumulator(req.request.explain).done_node(
        req, "relation", req.relation, FALSE, reason=reason
    )


async def _permission(req: Subproblem, permission: Permission) -> SubResult:
    state = req.request
    acc = Accumulator(state.explain)
    value = acc.take(await _expr(req, permission.expr))
    value = await _granted(req, acc, value)
    return acc.done_node(req, "permission", req.relation, value)


async def _granted(req: Subproblem, acc: Accumulator, value: Tri) -> Tri:
    """OR the request's grant sources (role bindings) into `value`, until it is true."""
    for source in req.request.grant_sources:
        if value.is_true:
            break
        granted = await source.grants(req)
        value = value | acc.merge(granted)
        if acc.nodes is None:
            continue
        if granted.explanation is not None and granted.explanation.kind == "grant":
            acc.add(granted.explanation)
        elif granted.explanation is not None or not granted.value.is_false:
            children = (granted.explanation,) if granted.explanation else ()
            acc.add(ex.node("grant", req.resource, req.relation, granted.value, children))
    return value


async def _expr(req: Subproblem, expr: Expr) -> SubResult:
    state = req.request
    if isinstance(expr, RelationRef):
        return await state.dispatch(req.child(req.resource, expr.name))
    acc = Accumulator(state.explain)
    if isinstance(expr, Union):
        value = FALSE
        for child in expr.children:
            value = value | acc.take(await _expr(req, child))
            if value.is_true:
                break
        return acc.done_node(req, "union", expr, value)
    if isinstance(expr, Intersection):
        value = TRUE
        for child in _direct_first(req, expr.children):
            value = value & acc.take(await _expr(req, child))
            if value.is_false:
                break
        return acc.done_node(req, "intersection", expr, value)
    if isinstance(expr, Exclusion):
        return await _exclusion(req, expr, acc)
    if isinstance(expr, Arrow):
        return await _arrow(req, expr, acc)
    if isinstance(expr, SelfRef):
        s = req.subject
        is_self = not s.relation and s.type == req.resource.type and s.id == req.resource.id
        reason = None if is_self else f"`{s}` is not `{req.resource}` itself"
        return acc.done_node(req, "self", "self", TRUE if is_self else FALSE, **_opt(reason))
    if isinstance(expr, Nil):
        return acc.done_node(req, "nil", "nil", FALSE, reason="`nil` is empty")
    raise TypeError(f"unknown expression {expr!r}")  # pragma: no cover - exhaustive above


def allowed_by_schema(relation: Relation, rel: Relationship) -> bool:
    """Whether the schema allows this stored relationship's subject type, wildcard and
    caveat (the rule writes obey). One it no longer allows, kept by a forced WriteSchema,
    grants nothing. An expiration is not judged here: such a relationship still ends when
    it expires, whether or not the relation still lists `with expiration`. The same rule as
    `schema.relationships.allows`, asked as one set lookup."""
    subject = rel.subject
    wildcard = subject.id == WILDCARD
    caveat = rel.caveat.name if rel.caveat is not None else None
    return (subject.type, "" if wildcard else subject.relation, wildcard, caveat) in relation.admits


def _direct_first(req: Subproblem, children: tuple[Expr, ...]) -> list[Expr]:
    """An intersection's operands, those answered from this object's own relationships
    (`self`, `nil`, a relation) first. The value does not depend on the order, but when
    one of them is false the others, which may recurse through other objects (into a
    cycle that never settles, for example), need not be evaluated. SpiceDB decides
    `container->view & reader` as empty when `reader` is, and so must we."""
    relations = req.snapshot.schema.relations
    resource_type = req.resource.type

    def direct(expr: Expr) -> bool:
        if isinstance(expr, RelationRef):
            return (resource_type, expr.name) in relations
        return isinstance(expr, SelfRef | Nil)

    return sorted(children, key=lambda expr: not direct(expr))


def _opt(reason: str | None) -> dict[str, str]:
    return {"reason": reason} if reason else {}


async def _exclusion(req: Subproblem, expr: Exclusion, acc: Accumulator) -> SubResult:
    base = acc.take(await _expr(req, expr.base))
    if base.is_false:
        return acc.done_node(req, "exclusion", expr, FALSE)
    subtracted = acc.take(await _expr(req, expr.subtracted))
    value = base & ~subtracted
    reason = None
    if subtracted.is_true and acc.nodes is not None:
        reason = f"excluded by `{ex.expr_text(expr.subtracted)}`"
    return acc.done_node(req, "exclusion", expr, value, **_opt(reason))


async def _arrow(req: Subproblem, expr: Arrow, acc: Accumulator) -> SubResult:
    state = req.request
    schema = req.snapshot.schema
    read = await state.reads.read(
        RelationshipFilter(req.resource.type, (req.resource.id,), expr.relation)
    )
    left = schema.relations.get((req.resource.type, expr.relation))
    live = tuple(rel for rel in read.live if left is not None and allowed_by_schema(left, rel))
    state.check_fanout(req, len(live), expr.relation)
    acc.consulted(live)
    for rel in read.expired if acc.nodes is not None else ():
        acc.add(ex.expired_leaf(rel))
    every = expr.mode == "all"
    kind = "arrow_all" if every else "arrow"  # the API tells `rel.all(perm)` apart
    if not live:
        missing = f"no relationship `{req.resource}#{expr.relation}`"
        return acc.done_node(req, kind, expr, FALSE, reason=missing)
    value = TRUE if every else FALSE
    for rel in live:
        held = step = state.caveats.value(rel, req.context)
        children: tuple[ExplainNode, ...] = ()
        reason: str | None = None
        if not step.is_false:
            target = rel.subject.object
            if schema.member(target.type, expr.target) is None:
                step, reason = FALSE, f"`{target.type}` has no `{expr.target}`"
            else:
                found = await state.dispatch(req.child(target, expr.target))
                step = step & acc.merge(found)
                children = (found.explanation,) if found.explanation else ()
        if acc.nodes is not None:
            acc.add(ex.relationship_leaf(rel, step, children, reason=reason, caveat=held))
        value = (value & step) if every else (value | step)
        if value.is_false if every else value.is_true:
            break
    return acc.done_node(req, kind, expr, value)


async def _relation(req: Subproblem, relation: Relation) -> SubResult:
    state = req.request
    resource, subject = req.resource, req.subject
    acc = Accumulator(state.explain)
    ids = (subject.id,) if subject.relation or subject.id == WILDCARD else (subject.id, WILDCARD)
    direct = await state.reads.read(
        RelationshipFilter(
            resource.type, (resource.id,), relation.name, subject.type, ids, subject.relation
        )
    )
    acc.consulted(direct.live)
    value = FALSE
    for rel in direct.live:
        if not allowed_by_schema(relation, rel):
            continue
        step = state.caveats.value(rel, req.context)
        value = value | step
        if acc.nodes is not None:
            acc.add(ex.relationship_leaf(rel, step))
        if value.is_true:
            break
    if not value.is_true:
        value = await _subject_sets(req, relation, acc, value)
    if not value.is_true:
        value = await _granted(req, acc, value)
    if acc.nodes is not None:
        for rel in direct.expired:
            acc.add(ex.expired_leaf(rel))
        if not acc.nodes:
            reason = ex.missing_relationship(resource, relation.name, subject)
            return acc.done_node(req, "relation", relation.name, value, reason=reason)
    return acc.done_node(req, "relation", relation.name, value)


async def _subject_sets(req: Subproblem, relation: Relation, acc: Accumulator, value: Tri) -> Tri:
    """Relationships whose subject is a subject set (`group:eng#member`): recurse into it."""
    state = req.request
    schema = req.snapshot.schema
    resource = req.resource
    seen: set[tuple[str, str]] = set()
    for allowed in relation.allowed:
        kind = (allowed.type, allowed.relation)
        if not allowed.relation or kind in seen:
            continue
        seen.add(kind)
        read = await state.reads.read(
            RelationshipFilter(
                resource.type,
                (resource.id,),
                relation.name,
                allowed.type,
                None,
                allowed.relation,
            )
        )
        live = [rel for rel in read.live if rel.subject != req.subject]  # exact: counted
        state.check_fanout(req, len(live), relation.name)
        acc.consulted(read.live)
        if acc.nodes is not None:
            for rel in read.expired:
                acc.add(ex.expired_leaf(rel))
        has_member = schema.member(allowed.type, allowed.relation) is not None
        for rel in live:
            if not allowed_by_schema(relation, rel):
                continue
            held = step = state.caveats.value(rel, req.context)
            children: tuple[ExplainNode, ...] = ()
            if not step.is_false and has_member:
                found = await state.dispatch(req.child(rel.subject.object, allowed.relation))
                step = step & acc.merge(found)
                children = (found.explanation,) if found.explanation else ()
            elif not has_member:
                step = FALSE
            if acc.nodes is not None:
                acc.add(ex.relationship_leaf(rel, step, children, caveat=held))
            value = value | step
            if value.is_true:
                return value
    return value
