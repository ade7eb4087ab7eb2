"""The rules around the engine's answer: subject lifecycle and impersonation.

`PermissionService.evaluate` and `evaluate_bulk` (live checks, CheckBulk and replay) go
through `DecisionRules`, so every entry point judges by the same rules:

- in a suspended tenant every decision is DENIED (tenancy/suspension.py), read at the
  decision's snapshot like a subject's status;
- a suspended or deprovisioned subject is DENIED everything, whatever the data says;
  status is read at the decision's snapshot, so from the token the suspension returned;
- with an actor (impersonation), the answer is ALLOWED only if the permission is
  delegable (schema `nondelegable` says it is not), the actor is active, the actor holds
  the impersonation permission (default `impersonate`) on the subject's object, and the
  subject is allowed. Missing context on either side makes it CONDITIONAL;
- with agents (a delegation chain), the answer is the intersection of the subject's and
  every agent's own answers (service/delegation.py), for a delegable permission only.

A denial by a rule carries a small explanation even when none was asked for, so the
decision log and the API can say why (`lifecycle`, `delegation` and `impersonation`
nodes, and `tenant` for a suspended tenant; see api/explain.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import datetime

from authz_service.engine import (
    CheckItem,
    CheckResult,
    Decision,
    Engine,
    ExcludedSubject,
    ExplainNode,
    Snapshot,
    SubjectResult,
)
from authz_service.engine.inputs import require_definition, require_permission, require_subject
from authz_service.errors import AuthzError, InvalidArgument, echo
from authz_service.model import WILDCARD, ObjectRef, Relationship, SubjectRef
from authz_service.service.delegation import combine_chain, require_agents
from authz_service.tenancy import SubjectStatus, SubjectStatuses
from authz_service.tenancy.suspension import TenantSuspensions

__all__ = ["DEFAULT_IMPERSONATE_PERMISSION", "DecisionRules"]

DEFAULT_IMPERSONATE_PERMISSION = "impersonate"


def _denied(node: ExplainNode) -> CheckResult:
    return CheckResult(Decision.DENIED, explanation=node)


def _for_subject(result: CheckResult, subject: SubjectRef) -> CheckResult:
    """`result` with the root of its explanation naming the checked subject: the engine and
    the rules build trees about one subject and leave it implied; core.proto promises it
    on the root (ExplanationNode.subject)."""
    root = result.explanation
    if root is None or root.subject is not None:
        return result
    return replace(result, explanation=replace(root, subject=str(subject)))


def _as_actor(node: ExplainNode, actor: SubjectRef) -> ExplainNode:
    """The actor's own step under an impersonation, marked as evaluated for the actor: it
    sits beside the subject's step and would read as the subject's otherwise."""
    return replace(node, subject=str(actor))


def _min_time(a: CheckResult, b: CheckResult) -> datetime | None:
    times = [t for t in (a.valid_until, b.valid_until) if t is not None]
    return min(times) if times else None


class DecisionRules:
    def __init__(
        self,
        engine: Engine,
        statuses: SubjectStatuses | None = None,
        *,
        impersonate_permission: str = DEFAULT_IMPERSONATE_PERMISSION,
        tenants: TenantSuspensions | None = None,
    ) -> None:
        self._engine = engine
        self._statuses = statuses
        self._tenants = tenants
        self.impersonate_permission = impersonate_permission

    # --- lifecycle ------------------------------------------------------------------------

    async def tenant_suspended(self, snap: Snapshot) -> bool:
        return self._tenants is not None and await self._tenants.suspended(
            snap.tenant, snap.revision
        )

    async def _tenant_block(
        self, snap: Snapshot, resource: ObjectRef, permission: str
    ) -> CheckResult | None:
        if not await self.tenant_suspended(snap):
            return None
        return _denied(
            ExplainNode(
                kind="tenant",
                object=str(resource),
                relation=permission,
                result=Decision.DENIED,
                reason=f"tenant `{echo(snap.tenant)}` is suspended: denied everything",
            )
        )

    async def status(self, snap: Snapshot, subject: SubjectRef) -> SubjectStatus:
        if self._statuses is None or subject.id == WILDCARD:
            return SubjectStatus.ACTIVE
        return await self._statuses.status(snap.tenant, snap.revision, subject.object)

    def _lifecycle(
        self,
        resource: ObjectRef,
        permission: str,
        who: SubjectRef,
        status: SubjectStatus,
        role: str,
    ) -> ExplainNode:
        return ExplainNode(
            kind="lifecycle",
            object=str(resource),
            relation=permission,
            result=Decision.DENIED,
            reason=f"{role} `{who.object}` is {status.value}: denied everything in this tenant",
        )

    async def inactive_ids(self, snap: Snapshot, subject_type: str) -> dict[str, SubjectStatus]:
        if self._statuses is None:
            return {}
        return await self._statuses.inactive_of_type(snap.tenant, snap.revision, subject_type)

    async def blocked_list(
        self, snap: Snapshot, resource: ObjectRef, subject: SubjectRef
    ) -> list[tuple[str, CheckResult]] | None:
        """ListPermissions for an inactive subject: every permission denied."""
        definition = require_definition(snap.schema, resource.type, "resource")
        require_subject(snap.schema, subject)
        if await self.tenant_suspended(snap):
            return [
                (p.name, blocked)
                for p in definition.permissions
                if (blocked := await self._tenant_block(snap, resource, p.name)) is not None
            ]
        status = await self.status(snap, subject)
        if status is SubjectStatus.ACTIVE:
            return None
        return [
            (p.name, _denied(self._lifecycle(resource, p.name, subject, status, "subject")))
            for p in definition.permissions
        ]

    async def filter_subjects(
        self,
        snap: Snapshot,
        subject_type: str,
        found: AsyncIterator[SubjectResult],
        limit: int | None,
    ) -> AsyncIterator[SubjectResult]:
        """LookupSubjects without inactive subjects: left out, and excluded from a wildcard."""
        if await self.tenant_suspended(snap):
            return  # a suspended tenant grants nobody anything
        inactive = await self.inactive_ids(snap, subject_type)
        sent = 0
        async for result in found:
            if limit is not None and sent >= limit:
                return
            if result.subject_id in inactive:
                continue
            sent += 1
            if result.subject_id != WILDCARD:
                yield result
                continue
            excluded = {e.subject_id: e for e in result.excluded_subjects}
            excluded.update((i, ExcludedSubject(i, Decision.DENIED)) for i in inactive)
            yield replace(result, excluded_subjects=tuple(excluded[i] for i in sorted(excluded)))

    # --- one decision ---------------------------------------------------------------------

    async def evaluate(
        self,
        snap: Snapshot,
        item: CheckItem,
        *,
        actor: SubjectRef | None = None,
        agents: Sequence[SubjectRef] = (),
        explain: bool = False,
        contextual: Sequence[Relationship] = (),
    ) -> CheckResult:
        result = await self._decide(snap, item, actor, agents, explain, contextual)
        return _for_subject(result, item.subject)

    async def _decide(
        self,
        snap: Snapshot,
        item: CheckItem,
        actor: SubjectRef | None,
        agents: Sequence[SubjectRef],
        explain: bool,
        contextual: Sequence[Relationship],
    ) -> CheckResult:
        schema = snap.schema
        require_permission(schema, item.resource, item.permission)
        require_subject(schema, item.subject)
        if actor is not None:
            self._require_actor(snap, actor)
        require_agents(snap, agents, actor)
        blocked = await self._tenant_block(snap, item.resource, item.permission)
        if blocked is not None:
            return blocked
        if agents:
            return await self._delegated(snap, item, agents, explain, contextual)
        if actor is not None:
            refused = self._delegation(snap, item, actor)
            if refused is not None:
                return refused
        status = await self.status(snap, item.subject)
        if status is not SubjectStatus.ACTIVE:
            node = self._lifecycle(item.resource, item.permission, item.subject, status, "subject")
            return _denied(self._wrap(item, actor, Decision.DENIED, [node]) if actor else node)
        if actor is None:
            return await self._engine.check(snap, item, explain=explain, contextual=contextual)
        allowed = await self._actor_allowed(snap, item, actor, explain, contextual)
        if allowed.decision is Decision.DENIED:
            return allowed
        result = await self._engine.check(snap, item, explain=explain, contextual=contextual)
        return self._combine(item, actor, result, allowed, explain)

    async def _delegated(
        self,
        snap: Snapshot,
        item: CheckItem,
        agents: Sequence[SubjectRef],
        explain: bool,
        contextual: Sequence[Relationship],
    ) -> CheckResult:
        node = _non_delegable(snap, item, "it is never allowed to agents acting for a subject")
        if node is not None:
            chain = " > ".join(str(m) for m in (item.subject, *agents))
            return _denied(
                ExplainNode(
                    kind="agents",
                    object=str(item.resource),
                    relation=item.permission,
                    result=Decision.DENIED,
                    reason=f"delegated: {chain}",
                    children=(node,),
                )
            )

        async def member(who: SubjectRef, role: str) -> CheckResult:
            status = await self.status(snap, who)
            if status is not SubjectStatus.ACTIVE:
                return _denied(self._lifecycle(item.resource, item.permission, who, status, role))
            check = replace(item, subject=who)
            return await self._engine.check(snap, check, explain=explain, contextual=contextual)

        return await combine_chain(item, agents, member, explain)

    def _require_actor(self, snap: Snapshot, actor: SubjectRef) -> None:
        require_subject(snap.schema, actor, "actor")
        if actor.relation:
            raise InvalidArgument(
                f"actor `{echo(actor)}` must be an object, not a subject set",
                field="actor",
                value=str(actor),
            )

    def _delegation(self, snap: Snapshot, item: CheckItem, actor: SubjectRef) -> CheckResult | None:
        node = _non_delegable(snap, item, "it is never allowed under impersonation")
        return None if node is None else _denied(self._wrap(item, actor, Decision.DENIED, [node]))

    async def _actor_allowed(
        self,
        snap: Snapshot,
        item: CheckItem,
        actor: SubjectRef,
        explain: bool,
        contextual: Sequence[Relationship],
    ) -> CheckResult:
        """The actor's own answer for "may impersonate the subject", or the denial."""
        subject = item.subject
        status = await self.status(snap, actor)
        if status is not SubjectStatus.ACTIVE:
            node = self._lifecycle(
                subject.object, self.impersonate_permission, actor, status, "actor"
            )
            return _denied(self._wrap(item, actor, Decision.DENIED, [_as_actor(node, actor)]))
        name = self.impersonate_permission
        if (subject.type, name) not in snap.schema.permissions:
            reason = (
                f"`{subject.type}` has no permission `{name}`: "
                f"`{actor}` may not impersonate `{subject.object}`"
            )
            return _denied(self._wrap(item, actor, Decision.DENIED, [], reason))
        check = CheckItem(subject.object, name, actor, item.context)
        found = await self._engine.check(snap, check, explain=explain, contextual=contextual)
        if found.decision is not Decision.DENIED:
            return found
        reason = f"`{actor}` may not impersonate `{subject.object}` (no `{name}`)"
        children = [_as_actor(found.explanation, actor)] if found.explanation else []
        return _denied(self._wrap(item, actor, Decision.DENIED, children, reason))

    def _combine(
        self,
        item: CheckItem,
        actor: SubjectRef,
        result: CheckResult,
        allowed: CheckResult,
        explain: bool,
    ) -> CheckResult:
        if result.decision is Decision.DENIED:
            decision = Decision.DENIED
        elif Decision.CONDITIONAL in (result.decision, allowed.decision):
            decision = Decision.CONDITIONAL
        else:
            decision = Decision.ALLOWED
        missing: tuple[str, ...] = ()
        if decision is Decision.CONDITIONAL:
            missing = tuple(sorted({*result.missing_context, *allowed.missing_context}))
        explanation = None
        if explain:
            children = [result.explanation] if result.explanation is not None else []
            if allowed.explanation is not None:
                children.append(_as_actor(allowed.explanation, actor))
            explanation = self._wrap(item, actor, decision, children)
        return CheckResult(
            decision,
            missing,
            explanation,
            result.cacheable and allowed.cacheable,
            _min_time(result, allowed),
        )

    def _wrap(
        self,
        item: CheckItem,
        actor: SubjectRef | None,
        decision: Decision,
        children: Sequence[ExplainNode],
        reason: str | None = None,
    ) -> ExplainNode:
        return ExplainNode(
            kind="impersonation",
            object=str(item.resource),
            relation=item.permission,
            result=decision,
            reason=reason or f"`{actor}` acting on behalf of `{item.subject}`",
            children=tuple(children),
        )

    # --- many decisions -------------------------------------------------------------------

    async def _one(
        self,
        snap: Snapshot,
        item: CheckItem,
        actor: SubjectRef | None,
        agents: Sequence[SubjectRef],
        explain: bool,
        contextual: Sequence[Relationship],
    ) -> CheckResult | AuthzError:
        try:
            return await self.evaluate(
                snap, item, actor=actor, agents=agents, explain=explain, contextual=contextual
            )
        except AuthzError as exc:
            return exc

    async def evaluate_bulk(
        self,
        snap: Snapshot,
        items: Sequence[CheckItem],
        *,
        actor: SubjectRef | None = None,
        agents: Sequence[SubjectRef] = (),
        explain: bool = False,
        contextual: Sequence[Relationship] = (),
    ) -> list[CheckResult | AuthzError]:
        """`evaluate` per item, with one engine request for every subject answer (shared
        memo) and one for every distinct impersonation check. A delegated batch is
        decided item by item (each needs a check per member of the chain anyway), and so
        is an explained one (an explanation is the proof of one decision)."""
        results: list[CheckResult | AuthzError | None] = [None] * len(items)
        if actor is not None:
            self._require_actor(snap, actor)
        require_agents(snap, agents, actor)
        if agents or explain:
            return [
                await self._one(snap, item, actor, agents, explain, contextual) for item in items
            ]
        for i, item in enumerate(items):
            try:
                require_permission(snap.schema, item.resource, item.permission)
                require_subject(snap.schema, item.subject)
                results[i] = await self._tenant_block(snap, item.resource, item.permission)
                if actor is not None and results[i] is None:
                    results[i] = self._delegation(snap, item, actor)
                if results[i] is None:
                    status = await self.status(snap, item.subject)
                    if status is not SubjectStatus.ACTIVE:
                        node = self._lifecycle(
                            item.resource, item.permission, item.subject, status, "subject"
                        )
                        wrapped = self._wrap(item, actor, Decision.DENIED, [node])
                        results[i] = _denied(wrapped if actor else node)
            except AuthzError as exc:
                results[i] = exc
        pending = [i for i, r in enumerate(results) if r is None]
        allowed: dict[int, CheckResult] = {}
        if actor is not None:
            by_subject: dict[CheckItem, CheckResult] = {}
            for i in pending:
                item = items[i]
                key = CheckItem(item.subject.object, "", actor, item.context)
                if key not in by_subject:
                    by_subject[key] = await self._actor_allowed(
                        snap, item, actor, False, contextual
                    )
                found = by_subject[key]
                if found.decision is not Decision.DENIED:
                    allowed[i] = found
                    continue
                refusal = found.explanation  # worded for this subject, not this item
                children = refusal.children if refusal is not None else ()
                reason = refusal.reason if refusal is not None else None
                results[i] = _denied(self._wrap(item, actor, Decision.DENIED, children, reason))
            pending = [i for i in pending if results[i] is None]
        answers = await self._engine.check_bulk(
            snap, [items[i] for i in pending], contextual=contextual
        )
        for i, answer in zip(pending, answers, strict=True):
            if actor is not None and isinstance(answer, CheckResult):
                results[i] = self._combine(items[i], actor, answer, allowed[i], False)
            else:
                results[i] = answer
        return [
            r if isinstance(r, AuthzError) else _for_subject(r, item.subject)
            for r, item in zip(results, items, strict=True)
            if r is not None
        ]


def _non_delegable(snap: Snapshot, item: CheckItem, rule: str) -> ExplainNode | None:
    """The refusal of a permission the schema marks non-delegable, or None if it is not."""
    permission = snap.schema.permissions.get((item.resource.type, item.permission))
    if permission is None or permission.delegable:
        return None
    return ExplainNode(
        kind="delegation",
        object=str(item.resource),
        relation=item.permission,
        result=Decision.DENIED,
        reason=f"`{item.resource.type}.{item.permission}` is non-delegable: {rule}",
    )
