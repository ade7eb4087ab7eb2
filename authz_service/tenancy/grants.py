"""`BindingGrants`: role bindings as a grant source of the engine.

For a subproblem "does S hold `T.p` on resource R":

1. the roles granting `T.p` (built-in from the schema, custom from the tenant index);
   none -> false, with no read at all once the tenant's index is cached;
2. the bindings of those roles (from the index, or one read per request for big tenants);
3. a binding applies if its scope is tenant-wide, R itself, or above R along the
   schema's `inherit` relations (walked upward through the request's reads, so
   request-only relationships count and the memo is shared with arrows);
4. and its subject is S, the wildcard of S's type, or a subject set S belongs to (decided
   by dispatching that subproblem, which keeps S, the memo, the depth limit and cycle
   detection).

The answer is cacheable like any other subproblem: it depends only on the snapshot (the
index key and the reads) and on the dispatched subproblems, whose volatility, expiry and
cycle marks are merged in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from authz_service.engine import FALSE, TRUE, ExplainNode, Snapshot, Subproblem, SubResult, Tri
from authz_service.engine import explain as ex
from authz_service.engine.accumulate import Accumulator
from authz_service.engine.dispatch import EvaluationState
from authz_service.errors import LimitExceeded
from authz_service.model import (
    WILDCARD,
    FrozenContext,
    ObjectRef,
    Relationship,
    RelationshipFilter,
    SubjectRef,
)
from authz_service.schema.compiled import CompiledSchema
from authz_service.store.protocol import RelationshipReader
from authz_service.tenancy.encoding import Binding, Pair
from authz_service.tenancy.hierarchy import Hierarchy, ReadFn, ancestors, descendants
from authz_service.tenancy.index import TenantIndex, TenantIndexes

__all__ = ["BindingGrants", "request_reader"]

_NOTHING = SubResult(FALSE)
_HIERARCHIES_KEPT = 8


def request_reader(state: EvaluationState) -> ReadFn:
    async def read(flt: RelationshipFilter) -> Sequence[Relationship]:
        return (await state.reads.read(flt)).live

    return read


class BindingGrants:
    """Implements `authz_service.engine.GrantSource` over the tenant's bindings."""

    def __init__(
        self,
        reader: RelationshipReader,
        *,
        index_cache_size: int = 64,
        max_binding_rows: int = 4000,
        max_reach: int = 100_000,
    ) -> None:
        self.indexes = TenantIndexes(
            reader, size=index_cache_size, max_binding_rows=max_binding_rows
        )
        self._hierarchies: dict[str, Hierarchy] = {}
        self._max_reach = max_reach

    def hierarchy(self, schema: CompiledSchema) -> Hierarchy:
        found = self._hierarchies.get(schema.version)
        if found is None:
            if len(self._hierarchies) >= _HIERARCHIES_KEPT:
                self._hierarchies.pop(next(iter(self._hierarchies)))
            found = self._hierarchies[schema.version] = Hierarchy.build(schema)
        return found

    async def index(self, snap: Snapshot) -> TenantIndex:
        return await self.indexes.get(snap)

    # --- Check ----------------------------------------------------------------------------

    async def grants(self, req: Subproblem) -> SubResult:
        index = await self.indexes.get(req.snapshot)
        roles = index.roles_granting((req.resource.type, req.relation))
        if not roles or not index.may_bind(roles):
            return _NOTHING
        bindings = await index.bindings_of(req.request, roles)
        if not bindings:
            return _NOTHING
        return await _Evaluation(req, self.hierarchy(req.snapshot.schema)).run(bindings)

    # --- LookupResources ------------------------------------------------------------------

    async def resource_candidates(
        self,
        state: EvaluationState,
        pairs: frozenset[Pair],
        subject: SubjectRef,
        context: FrozenContext,
    ) -> Mapping[Pair, Iterable[str]]:
        index = await self.indexes.get(state.snapshot)
        by_pair = {p: roles for p in pairs if (roles := index.roles_granting(p))}
        wanted = frozenset(role for roles in by_pair.values() for role in roles)
        if not wanted or not index.may_bind(wanted):
            return {}
        found: dict[Pair, set[str]] = defaultdict(set)
        hierarchy = self.hierarchy(state.snapshot.schema)
        read = request_reader(state)
        for binding in await index.bindings_of(state, wanted):
            if not await _may_hold(state, binding.subject, subject, context):
                continue
            granted = [p for p, roles in by_pair.items() if binding.role in roles]
            types = frozenset(t for t, _ in granted)
            if binding.scope is None:
                objects = await self._everything(read, types)
            else:
                objects = await descendants(
                    read,
                    hierarchy,
                    binding.scope,
                    max_depth=state.limits.max_depth,
                    max_objects=self._max_reach,
                    wanted=types,
                )
            for type_name, name in granted:
                found[(type_name, name)].update(o.id for o in objects if o.type == type_name)
        return found

    async def _everything(self, read: ReadFn, types: frozenset[str]) -> list[ObjectRef]:
        """Every object of `types` named anywhere in the tenant's relationships: what a
        tenant-wide binding can be listed for (it grants on any id, named or not)."""
        found: set[ObjectRef] = set()
        for type_name in sorted(types):
            for rel in await read(RelationshipFilter(resource_type=type_name)):
                found.add(rel.resource)
            for rel in await read(RelationshipFilter(subject_type=type_name)):
                if rel.subject.id != WILDCARD:
                    found.add(rel.subject.object)
            if len(found) > self._max_reach:
                raise LimitExceeded(
                    f"more than `{self._max_reach}` resources of `{type_name}` to list"
                )
        return sorted(found, key=lambda o: (o.type, o.id))

    # --- LookupSubjects -------------------------------------------------------------------

    async def subject_candidates(
        self, state: EvaluationState, resource: ObjectRef, name: str
    ) -> Sequence[SubjectRef]:
        index = await self.indexes.get(state.snapshot)
        roles = index.roles_granting((resource.type, name))
        if not roles or not index.may_bind(roles):
            return ()
        bindings = await index.bindings_of(state, roles)
        above: set[ObjectRef] = set()
        if any(b.scope is not None and b.scope != resource for b in bindings):
            hierarchy = self.hierarchy(state.snapshot.schema)
            above = await ancestors(
                request_reader(state), hierarchy, resource, max_depth=state.limits.max_depth
            )
        return [
            b.subject
            for b in bindings
            if b.scope is None or b.scope == resource or b.scope in above
        ]


async def _may_hold(
    state: EvaluationState, holder: SubjectRef, subject: SubjectRef, context: FrozenContext
) -> bool:
    """Could `subject` be `holder` (a binding's subject)? True for the same subject, the
    wildcard of its type, and a subject set it is (or may conditionally be) a member of."""
    if holder == subject:
        return True
    if holder.id == WILDCARD:
        return holder.type == subject.type and not subject.relation
    if not holder.relation or state.snapshot.schema.member(holder.type, holder.relation) is None:
        return False
    req = Subproblem(state.snapshot, context, holder.object, holder.relation, subject, 0, state)
    return not (await state.dispatch(req)).value.is_false


class _Evaluation:
    """One grants() call: bindings in order until one grants."""

    def __init__(self, req: Subproblem, hierarchy: Hierarchy) -> None:
        self.req = req
        self.state = req.request
        self.hierarchy = hierarchy
        self.merge = Accumulator(explain=False)  # expiry, volatility, cycle marks
        self.nodes: list[ExplainNode] | None = [] if self.state.explain else None
        self._above: dict[ObjectRef, Tri] | None = None
        self._paths: dict[ObjectRef, tuple[Relationship, ...]] = {}

    async def run(self, bindings: Sequence[Binding]) -> SubResult:
        req = self.req
        value = FALSE
        for binding in sorted(bindings, key=self._cost):
            scope = await self._scope(binding)
            if scope.is_false:
                self._note(binding, FALSE, None, f"`{req.resource}` is not below `{binding.scope}`")
                continue
            held, proof = await self._subject(binding)
            step = scope & held
            reason = None if not step.is_false else f"`{req.subject}` is not `{binding.subject}`"
            self._note(binding, step, proof, reason)
            value = value | step
            if value.is_true:
                break
        return self.merge.done(value, self._explanation(value))

    def _cost(self, binding: Binding) -> tuple[int, str]:
        """Cheap bindings first: scope needs no walk, subject needs no dispatch."""
        walk = binding.scope is not None and binding.scope != self.req.resource
        dispatch = bool(binding.subject.relation) and binding.subject != self.req.subject
        return (int(walk) + 2 * int(dispatch), binding.binding_id)

    async def _scope(self, binding: Binding) -> Tri:
        if binding.scope is None or binding.scope == self.req.resource:
            return TRUE
        if binding.scope.type not in self.hierarchy.ancestor_types(self.req.resource.type):
            return FALSE
        if self._above is None:
            self._above = await self._walk_up()
        return self._above.get(binding.scope, FALSE)

    async def _walk_up(self) -> dict[ObjectRef, Tri]:
        """Objects above the resource with the value of the best path to each (caveats on
        parent relationships make a path conditional), breadth first."""
        req, state = self.req, self.state
        best: dict[ObjectRef, Tri] = {req.resource: TRUE}
        self._paths = {req.resource: ()}
        frontier = [req.resource]
        for _ in range(state.limits.max_depth):
            following: list[ObjectRef] = []
            for obj in frontier:
                for relation in self.hierarchy.parents.get(obj.type, ()):
                    read = await state.reads.read(RelationshipFilter(obj.type, (obj.id,), relation))
                    state.check_fanout(req, len(read.live), relation)
                    self.merge.consulted(read.live)
                    for rel in read.live:
                        step = best[obj] & state.caveats.value(rel, req.context)
                        parent = rel.subject.object
                        old = best.get(parent, FALSE)
                        if step.is_false or (old | step).value == old.value:
                            continue
                        best[parent] = old | step
                        self._paths[parent] = (*self._paths[obj], rel)
                        following.append(parent)
            if not following:
                return best
            frontier = following
        raise LimitExceeded(
            f"the hierarchy above `{req.resource}` is deeper than `{state.limits.max_depth}` "
            f"levels checking `{state.root_label}`, the limit AUTHZ_MAX_DEPTH"
        )

    async def _subject(self, binding: Binding) -> tuple[Tri, ExplainNode | None]:
        holder, subject = binding.subject, self.req.subject
        if holder == subject:
            return TRUE, None
        if holder.id == WILDCARD:
            same = holder.type == subject.type and not subject.relation
            return (TRUE if same else FALSE), None
        schema = self.req.snapshot.schema
        if not holder.relation or schema.member(holder.type, holder.relation) is None:
            return FALSE, None
        found = await self.state.dispatch(self.req.child(holder.object, holder.relation))
        return self.merge.merge(found), found.explanation

    def _note(
        self, binding: Binding, value: Tri, proof: ExplainNode | None, reason: str | None
    ) -> None:
        if self.nodes is None:
            return
        path = self._paths.get(binding.scope) if binding.scope else None
        # Each link as its caveat decided it (a caveat makes a path conditional): the value
        # `_walk_up` met, taken again from the request's caveat memo.
        caveats, context = self.state.caveats, self.req.context
        children = [ex.relationship_leaf(rel, caveats.value(rel, context)) for rel in path or ()]
        if proof is not None:
            children.append(proof)
        node = ex.node(
            "grant",
            binding.scope or self.req.resource,
            self.req.relation,
            value,
            children,
            reason=reason or binding.describe(),
        )
        self.nodes.append(_with_binding(node, binding))

    def _explanation(self, value: Tri) -> ExplainNode | None:
        if not self.nodes:
            return None
        if len(self.nodes) == 1:
            return self.nodes[0]
        decisive = [n for n in self.nodes if n.result is value.decision] if value.is_true else []
        if decisive:
            return decisive[-1]
        req = self.req
        return ex.node(
            "grant",
            req.resource,
            req.relation,
            value,
            self.nodes,
            reason=f"no role binding grants `{req.resource.type}.{req.relation}` here",
        )


def _with_binding(node: ExplainNode, binding: Binding) -> ExplainNode:
    return ExplainNode(
        kind=node.kind,
        object=node.object,
        relation=node.relation,
        result=node.result,
        reason=node.reason,
        children=node.children,
        binding=binding.ref(),
    )
