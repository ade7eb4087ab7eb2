"""`Engine`: the operations, each a thin shell over one `RequestState`.

Every operation validates its input against the snapshot's schema, builds the request
state (memo, reads at the snapshot's revision merged with request-only relationships,
limits) and asks `decide` (or a lookup) for answers. Nothing here knows about storage
backends, caches or gRPC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

from authz_service.engine.check import LocalDispatcher
from authz_service.engine.decide import decide
from authz_service.engine.dispatch import Dispatcher, GrantSource
from authz_service.engine.inputs import (
    require_contextual,
    require_definition,
    require_member,
    require_permission,
    require_subject,
)
from authz_service.engine.lookup_resources import WalkCache, lookup_resource_pages
from authz_service.engine.lookup_subjects import lookup_subjects
from authz_service.engine.reads import Reads
from authz_service.engine.request import RequestState
from authz_service.engine.reverse import ReverseIndex
from authz_service.engine.types import (
    CheckItem,
    CheckResult,
    Limits,
    ResourceResult,
    Snapshot,
    SubjectResult,
)
from authz_service.errors import AuthzError, InvalidArgument, echo
from authz_service.model import FrozenContext, ObjectRef, Relationship, SubjectRef
from authz_service.schema.compiled import CompiledSchema
from authz_service.store.protocol import RelationshipReader

__all__ = ["Engine"]

_INDEXES_KEPT = 8  # reverse indexes of recent schema versions


class Engine:
    """Decides Check, CheckBulk, ListPermissions, LookupResources, LookupSubjects and
    Explain over a `RelationshipReader`.

    `dispatcher_wrapper` decorates the local dispatcher (e.g. with a cross-request cache;
    see `authz_service.engine.dispatch`). Explanations bypass it: they must show the
    evaluation that happened. `grant_sources` are OR-ed into every permission and relation
    evaluated (see `grants.py`).
    Each operation takes an optional `limits` overriding the engine's for that call (a
    per-request deadline).
    """

    def __init__(
        self,
        reader: RelationshipReader,
        *,
        limits: Limits = Limits(),  # noqa: B008 - frozen value, safe as a default
        dispatcher_wrapper: Callable[[Dispatcher], Dispatcher] | None = None,
        grant_sources: Sequence[GrantSource] = (),
        walks: WalkCache | None = None,
    ) -> None:
        self._reader = reader
        self._walks = walks  # LookupResources' candidate walks, kept for later pages
        self.limits = limits
        self._local = LocalDispatcher()
        self._dispatcher: Dispatcher = (
            dispatcher_wrapper(self._local) if dispatcher_wrapper else self._local
        )
        self._grant_sources = tuple(grant_sources)
        self._indexes: dict[str, ReverseIndex] = {}

    def _state(
        self,
        snap: Snapshot,
        contextual: Sequence[Relationship],
        limits: Limits | None,
        *,
        explain: bool = False,
    ) -> RequestState:
        require_contextual(snap.schema, contextual)
        return RequestState(
            snapshot=snap,
            reads=Reads(self._reader, snap, contextual),
            # Explanations must show the evaluation that ran, request-only relationships
            # change answers under keys shared with other requests, and fully consistent
            # reads promise no cache: all three skip the wrapper.
            inner=self._local
            if explain or contextual or not snap.shared_cache
            else self._dispatcher,
            limits=limits or self.limits,
            explain=explain,
            grant_sources=self._grant_sources,
        )

    def _index(self, schema: CompiledSchema) -> ReverseIndex:
        index = self._indexes.get(schema.version)
        if index is None:
            if len(self._indexes) >= _INDEXES_KEPT:
                self._indexes.pop(next(iter(self._indexes)))
            index = self._indexes[schema.version] = ReverseIndex.build(schema)
        return index

    async def check(
        self,
        snap: Snapshot,
        item: CheckItem,
        *,
        explain: bool = False,
        contextual: Sequence[Relationship] = (),
        limits: Limits | None = None,
    ) -> CheckResult:
        _require_item(snap.schema, item)
        return await decide(self._state(snap, contextual, limits, explain=explain), item)

    async def explain(
        self,
        snap: Snapshot,
        item: CheckItem,
        *,
        contextual: Sequence[Relationship] = (),
        limits: Limits | None = None,
    ) -> CheckResult:
        return await self.check(snap, item, explain=True, contextual=contextual, limits=limits)

    async def check_bulk(
        self,
        snap: Snapshot,
        items: Sequence[CheckItem],
        *,
        contextual: Sequence[Relationship] = (),
        limits: Limits | None = None,
    ) -> list[CheckResult | AuthzError]:
        """One result or error per item, in order; one memo shared by all items."""
        state = self._state(snap, contextual, limits)
        results: list[CheckResult | AuthzError] = []
        for item in items:
            try:
                _require_item(snap.schema, item)
                results.append(await decide(state, item))
            except AuthzError as exc:
                results.append(exc)
        return results

    async def list_permissions(
        self,
        snap: Snapshot,
        resource: ObjectRef,
        subject: SubjectRef,
        context: FrozenContext,
        *,
        contextual: Sequence[Relationship] = (),
        limits: Limits | None = None,
    ) -> list[tuple[str, CheckResult]]:
        """Every permission (not relation) of the resource's definition, in schema order."""
        definition = require_definition(snap.schema, resource.type, "resource")
        require_subject(snap.schema, subject)
        state = self._state(snap, contextual, limits)
        found: list[tuple[str, CheckResult]] = []
        for permission in definition.permissions:
            item = CheckItem(resource, permission.name, subject, context)
            found.append((permission.name, await decide(state, item)))
        return found

    def lookup_resources(
        self,
        snap: Snapshot,
        resource_type: str,
        permission: str,
        subject: SubjectRef,
        context: FrozenContext,
        *,
        contextual: Sequence[Relationship] = (),
        after: str | None = None,
        limit: int | None = None,
        limits: Limits | None = None,
    ) -> AsyncIterator[ResourceResult]:
        """Resources (ALLOWED or CONDITIONAL) sorted by id, strictly after the cursor
        `after`, at most `limit`. Input errors raise here, before iteration."""
        pages = self.lookup_resource_pages(
            snap,
            resource_type,
            permission,
            subject,
            context,
            contextual=contextual,
            after=after,
            limit=limit,
            limits=limits,
        )
        return _flat(pages)

    def lookup_resource_pages(
        self,
        snap: Snapshot,
        resource_type: str,
        permission: str,
        subject: SubjectRef,
        context: FrozenContext,
        *,
        contextual: Sequence[Relationship] = (),
        after: str | None = None,
        limit: int | None = None,
        limits: Limits | None = None,
    ) -> AsyncIterator[list[ResourceResult]]:
        """`lookup_resources` in pages (non-empty lists, in order)."""
        require_definition(snap.schema, resource_type, "resource_type")
        require_member(snap.schema, resource_type, permission, "permission")
        require_subject(snap.schema, subject)
        _require_limit(limit)
        state = self._state(snap, contextual, limits)
        state.root_label = f"{resource_type}:*#{permission}"
        index = self._index(snap.schema)
        return lookup_resource_pages(
            state,
            index=index,
            resource_type=resource_type,
            permission=permission,
            subject=subject,
            context=context,
            after=after,
            limit=limit,
            walks=self._walks,
        )

    def lookup_subjects(
        self,
        snap: Snapshot,
        resource: ObjectRef,
        permission: str,
        subject_type: str,
        context: FrozenContext,
        *,
        subject_relation: str = "",
        contextual: Sequence[Relationship] = (),
        after: str | None = None,
        limit: int | None = None,
        limits: Limits | None = None,
    ) -> AsyncIterator[SubjectResult]:
        """Subjects (ALLOWED or CONDITIONAL) sorted by id (`*` first), strictly after the
        cursor `after`, at most `limit`. Input errors raise here, before iteration."""
        require_permission(snap.schema, resource, permission)
        require_definition(snap.schema, subject_type, "subject_type")
        if subject_relation:
            require_member(snap.schema, subject_type, subject_relation, "subject_relation")
        _require_limit(limit)
        state = self._state(snap, contextual, limits)
        state.root_label = f"{resource}#{permission}"
        return lookup_subjects(
            state,
            resource=resource,
            permission=permission,
            subject_type=subject_type,
            subject_relation=subject_relation,
            context=context,
            after=after,
            limit=limit,
        )


async def _flat(pages: AsyncIterator[list[ResourceResult]]) -> AsyncIterator[ResourceResult]:
    async for page in pages:
        for found in page:
            yield found


def _require_item(schema: CompiledSchema, item: CheckItem) -> None:
    require_permission(schema, item.resource, item.permission)
    require_subject(schema, item.subject)


def _require_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise InvalidArgument(
            f"limit `{echo(limit)}` must be at least 1", field="limit", value=limit
        )
