"""The service-account report: unused and over-privileged accounts of a tenant.

Over a window (30 days by default) ending now:

- **unused**: an account created before the window whose keys were not used in it and
  that took part in no decision in it, as subject or as an agent of a delegation chain
  (the decision log's `subject` and `details.agents`);
- **unexercised grants**: a relationship naming the account as its subject, or a role
  binding given to it, that no ALLOWED decision of the account in the window relied on.
  "Relied on" is the decisive path: each distinct (resource, permission) the account was
  allowed is checked again now with an explanation, and the grants on its proof path
  count as exercised (at most `MAX_PAIRS` pairs per account, newest first);
- **broad grants**: tenant-wide role bindings, whatever their use.

Without a readable decision log (logging off, or another server's disk) decisions are not
looked at: `unused` then rests on key use alone and no grant is called unexercised,
since that would flag every grant. The report is read-only and not logged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from authz_service.decisionlog import Decision, DecisionKind, DecisionRecord, RecordFilter
from authz_service.engine import CheckItem, ExplainNode, Snapshot
from authz_service.engine import Decision as EngineDecision
from authz_service.errors import AuthzError
from authz_service.model import (
    Consistency,
    ConsistencyMode,
    Relationship,
    RelationshipFilter,
    SubjectRef,
    parse_object,
    parse_relationship,
)
from authz_service.service.log_reader import aiter_log
from authz_service.service.permissions import PermissionService
from authz_service.service.relationships import is_internal
from authz_service.service.service_accounts import (
    SERVICE_ACCOUNT_TYPE,
    AccountView,
    ServiceAccountAdmin,
)
from authz_service.store.protocol import Store
from authz_service.tenancy.encoding import BINDING, Binding, bindings_from

__all__ = ["MAX_PAIRS", "Finding", "Report", "ServiceAccountReporter"]

MAX_PAIRS = 200
_CHECKS = (DecisionKind.CHECK, DecisionKind.CHECK_BULK_ITEM)

_Key = tuple[str, str, str]  # (resource, relation, subject) of a relationship


@dataclass(frozen=True, slots=True)
class Finding:
    account: AccountView
    unused: bool
    last_decision: datetime | None
    unexercised: tuple[str, ...]
    broad: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Report:
    findings: list[Finding]
    since: datetime
    account_count: int
    log_read: bool


@dataclass
class _Activity:
    last: datetime | None = None
    allowed: dict[tuple[str, str], datetime] = field(default_factory=dict)


def _key(rel: Relationship) -> _Key:
    return (str(rel.resource), rel.relation, str(rel.subject))


def _members(record: DecisionRecord) -> Iterator[str]:
    yield record.subject
    agents = record.details.get("agents")
    if isinstance(agents, list):
        yield from (str(a) for a in agents)


def _proof(node: ExplainNode) -> Iterator[ExplainNode]:
    """The steps of the ALLOWED path: the grants the decision relied on."""
    if node.result is not EngineDecision.ALLOWED:
        return
    yield node
    for child in node.children:
        yield from _proof(child)


class ServiceAccountReporter:
    def __init__(
        self,
        *,
        store: Store,
        accounts: ServiceAccountAdmin,
        permissions: PermissionService,
        log_dir: Path | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._permissions = permissions
        self._log_dir = log_dir  # None when decisions are not logged here
        self._clock = clock

    async def report(self, tenant: str, window: timedelta) -> Report:
        since = self._clock() - window
        accounts = await self._accounts.all_accounts(tenant)
        activity, log_read = await self._activity(tenant, since)
        snap = await self._permissions.snapshot(
            tenant, Consistency(ConsistencyMode.FULLY_CONSISTENT)
        )
        findings = []
        for view in accounts:
            seen = activity.get(view.record.account_id, _Activity())
            finding = await self._finding(snap, view, seen, since, log_read)
            if finding.unused or finding.unexercised or finding.broad:
                findings.append(finding)
        return Report(findings, since, len(accounts), log_read)

    async def _activity(self, tenant: str, since: datetime) -> tuple[dict[str, _Activity], bool]:
        found: dict[str, _Activity] = {}
        if self._log_dir is None or not self._log_dir.is_dir():
            return found, False
        prefix = f"{SERVICE_ACCOUNT_TYPE}:"
        async for entry in aiter_log(self._log_dir, RecordFilter(tenant=tenant, since=since)):
            record = entry.stored.entry.record
            if record.kind is DecisionKind.ADMIN:
                continue
            for member in _members(record):
                if not member.startswith(prefix) or "#" in member:
                    continue
                seen = found.setdefault(member.removeprefix(prefix), _Activity())
                if seen.last is None or record.time > seen.last:
                    seen.last = record.time
                if record.kind in _CHECKS and record.decision is Decision.ALLOWED:
                    pair = (record.resource, record.action)
                    seen.allowed[pair] = max(record.time, seen.allowed.get(pair, record.time))
        return found, True

    async def _finding(
        self,
        snap: Snapshot,
        view: AccountView,
        seen: _Activity,
        since: datetime,
        log_read: bool,
    ) -> Finding:
        account_id = view.record.account_id
        key_used = view.last_key_use is not None and view.last_key_use >= since
        unused = view.record.created_at < since and not key_used and seen.last is None
        relationships, bindings = await self._grants(snap, account_id)
        broad = tuple(b.describe() for b in bindings if b.scope is None)
        unexercised: tuple[str, ...] = ()
        if log_read:
            used_rels, used_bindings = await self._exercised(snap, account_id, seen)
            unexercised = tuple(
                [str(r) for r in relationships if _key(r) not in used_rels]
                + [b.describe() for b in bindings if b.binding_id not in used_bindings]
            )
        return Finding(view, unused, seen.last, unexercised, broad)

    async def _grants(
        self, snap: Snapshot, account_id: str
    ) -> tuple[list[Relationship], list[Binding]]:
        naming = RelationshipFilter(subject_type=SERVICE_ACCOUNT_TYPE, subject_ids=(account_id,))
        rows = await self._store.read(snap.tenant, snap.revision, naming)
        relationships = [r for r in rows if not is_internal(r)]
        ids = sorted({r.resource.id for r in rows if r.resource.type == BINDING})
        bindings: list[Binding] = []
        if ids:
            parts = await self._store.read(
                snap.tenant, snap.revision, RelationshipFilter(BINDING, tuple(ids))
            )
            found = bindings_from(parts)
            bindings = [found[i] for i in sorted(found)]
        return relationships, bindings

    async def _exercised(
        self, snap: Snapshot, account_id: str, seen: _Activity
    ) -> tuple[set[_Key], set[str]]:
        relationships: set[_Key] = set()
        bindings: set[str] = set()
        subject = SubjectRef(SERVICE_ACCOUNT_TYPE, account_id)
        newest = sorted(seen.allowed, key=lambda p: seen.allowed[p], reverse=True)
        for resource, permission in newest[:MAX_PAIRS]:
            try:
                item = CheckItem(parse_object(resource), permission, subject)
                result = await self._permissions.evaluate(snap, item, explain=True)
            except AuthzError:
                continue  # a question the schema no longer allows relies on no grant now
            if result.explanation is None:
                continue
            for node in _proof(result.explanation):
                if node.relationship:
                    try:
                        relationships.add(_key(parse_relationship(node.relationship)))
                    except AuthzError:
                        continue
                if node.binding is not None:
                    bindings.add(node.binding.binding_id)
        return relationships, bindings
