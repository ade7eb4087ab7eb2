"""Delegated checks: agents acting for a subject, decided as the intersection.

An agent (a service account, a workload) acting for a user may do only what both may
do; a chain (the user's assistant delegating to a tool) narrows it further. So with
`agents = [a1, a2, ...]` a decision is ALLOWED only if the permission is delegable, and
the subject and every agent are each active and each allowed on the resource; DENIED if
any is denied; otherwise CONDITIONAL with the missing context of all. Unlike
impersonation no one needs a permission on anyone: the intersection itself bounds what
the chain can do.

A delegated denial always carries an explanation (`agents` over one `principal` and one
`agent` step per member, each naming its member in `subject`), so the decision log and
the API's deny reason can say which member lacked the permission.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from authz_service.engine import CheckItem, CheckResult, Decision, ExplainNode, Snapshot
from authz_service.engine.inputs import require_subject
from authz_service.errors import InvalidArgument, echo
from authz_service.model import SubjectRef

__all__ = ["MAX_AGENTS", "combine_chain", "require_agents"]

MAX_AGENTS = 8  # a longer chain is almost surely a loop; each member costs a check

Evaluate = Callable[[SubjectRef, str], Awaitable[CheckResult]]


def require_agents(snap: Snapshot, agents: Sequence[SubjectRef], actor: object) -> None:
    """INVALID_ARGUMENT naming `agents[i]` for a chain no request may carry."""
    if actor is not None and agents:
        raise InvalidArgument(
            "`agents` cannot be combined with `actor`: impersonate or delegate, not both",
            field="agents",
        )
    if len(agents) > MAX_AGENTS:
        raise InvalidArgument(
            f"a delegation chain of {len(agents)} agents exceeds the limit of {MAX_AGENTS}",
            field="agents",
            value=len(agents),
        )
    for i, agent in enumerate(agents):
        name = f"agents[{i}]"
        require_subject(snap.schema, agent, name)
        if agent.relation:
            raise InvalidArgument(
                f"agent `{echo(agent)}` must be an object, not a subject set",
                field=name,
                value=str(agent),
            )


async def combine_chain(
    item: CheckItem,
    agents: Sequence[SubjectRef],
    evaluate: Evaluate,
    explain: bool,
) -> CheckResult:
    """The intersection of the subject's and every agent's answer. `evaluate(who, role)`
    decides the item for one member (its lifecycle included); a DENIED member ends the
    chain early, since nothing after it can change the answer."""
    members = [(item.subject, "subject"), *((a, "agent") for a in agents)]
    results: list[tuple[SubjectRef, str, CheckResult]] = []
    for who, role in members:
        found = await evaluate(who, role)
        results.append((who, role, found))
        if found.decision is Decision.DENIED:
            break
    denied = any(r.decision is Decision.DENIED for _, _, r in results)
    if denied:
        decision = Decision.DENIED
    elif any(r.decision is Decision.CONDITIONAL for _, _, r in results):
        decision = Decision.CONDITIONAL
    else:
        decision = Decision.ALLOWED
    missing: tuple[str, ...] = ()
    if decision is Decision.CONDITIONAL:
        missing = tuple(sorted({m for _, _, r in results for m in r.missing_context}))
    explanation = None
    if explain or denied:
        explanation = _tree(item, agents, decision, results)
    times = [r.valid_until for _, _, r in results if r.valid_until is not None]
    valid_until: datetime | None = min(times) if times else None
    return CheckResult(
        decision,
        missing,
        explanation,
        all(r.cacheable for _, _, r in results),
        valid_until,
    )


def _tree(
    item: CheckItem,
    agents: Sequence[SubjectRef],
    decision: Decision,
    results: Sequence[tuple[SubjectRef, str, CheckResult]],
) -> ExplainNode:
    steps = []
    for who, role, found in results:
        kind = "principal" if role == "subject" else "agent"
        if found.decision is Decision.DENIED:
            reason = f"{role} `{who}` is not allowed `{item.permission}` itself"
        else:
            reason = f"{role} `{who}`"
        children = (found.explanation,) if found.explanation is not None else ()
        steps.append(
            ExplainNode(
                kind=kind,
                object=str(item.resource),
                relation=item.permission,
                result=found.decision,
                reason=reason,
                children=children,
                subject=str(who),
            )
        )
    chain = " > ".join(str(m) for m in (item.subject, *agents))
    return ExplainNode(
        kind="agents",
        object=str(item.resource),
        relation=item.permission,
        result=decision,
        reason=f"delegated: {chain} (each must be allowed)",
        children=tuple(steps),
    )
