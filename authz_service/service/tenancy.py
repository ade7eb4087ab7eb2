"""Tenant administration behind TenancyService, free of gRPC: custom roles, role
bindings and the reach of a grant. (Subject lifecycle is in `service/lifecycle.py`.)

Every write is validated against the current schema first (bad input writes nothing),
is one atomic store call at one new revision of the tenant only, is announced to the
revision resolver (so the caller's token is honoured at once) and is logged as an
administrative change. Conditions that depend on other writes (the role still exists,
no identical binding, no bindings left) are preconditions inside that same write.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from authz_service.engine import Snapshot
from authz_service.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PreconditionUnmet,
    echo,
)
from authz_service.model import (
    Consistency,
    ConsistencyMode,
    ObjectRef,
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    Revision,
    SubjectRef,
    UpdateOp,
)
from authz_service.revisions import RevisionResolver
from authz_service.schema.compiled import CompiledSchema
from authz_service.schema.relationships import check_relationship
from authz_service.service import methods
from authz_service.service.audit import AuditTrail, CallInfo
from authz_service.service.pages import Page, TenantReader, page_limit, page_of
from authz_service.service.schemas import SchemaManager
from authz_service.store.protocol import Precondition, Store, WholeResources
from authz_service.tenancy import Binding, BindingGrants, CustomRole, ReachRules
from authz_service.tenancy.cycles import binding_cycle, role_cycle
from authz_service.tenancy.encoding import (
    BINDING,
    DEFINED,
    GRANTS,
    ROLE,
    ROLE_OF,
    SCOPE_OF,
    SUBJECT_OF,
    Pair,
    binding_id,
    binding_relationships,
    role_relationships,
    roles_from,
)
from authz_service.tenancy.hierarchy import ReadFn
from authz_service.tenancy.index import TenantIndex, role_pairs
from authz_service.tenancy.reach import binding_starts, bindings_of_subject, reach, reach_order

__all__ = ["ReachPage", "RoleView", "TenancyService"]

_ROLE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_MAX_DESCRIPTION = 1024


@dataclass(frozen=True, slots=True)
class RoleView:
    name: str
    description: str
    permissions: tuple[Pair, ...]
    built_in: bool
    update_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReachPage:
    resource_count: int
    permission_count: int
    resources: list[tuple[ObjectRef, tuple[str, ...]]]
    next_after: str | None
    revision: Revision


class TenancyService:
    def __init__(
        self,
        *,
        store: Store,
        schemas: SchemaManager,
        resolver: RevisionResolver,
        audit: AuditTrail,
        grants: BindingGrants,
        max_depth: int = 50,
        max_reach: int = 100_000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._schemas = schemas
        self._resolver = resolver
        self._audit = audit
        self._grants = grants
        self._max_depth = max_depth
        self._max_reach = max_reach
        self._clock = clock
        self._rules: dict[str, ReachRules] = {}

    # --- plumbing -------------------------------------------------------------------------

    async def _at(self, tenant: str, consistency: Consistency) -> Snapshot:
        """The snapshot a read runs at (later pages of a listing: the first one's)."""
        schema, revision = await self._schemas.for_read(self._resolver, tenant, consistency)
        return Snapshot(tenant, revision, schema, self._clock())

    async def _head(self, tenant: str) -> Snapshot:
        return await self._at(tenant, Consistency(ConsistencyMode.FULLY_CONSISTENT))

    def _reader(self, snap: Snapshot) -> TenantReader:
        return TenantReader(self._store, snap.tenant, snap.revision, snap.now)

    async def _logged(
        self,
        tenant: str,
        call: CallInfo,
        revision: Revision,
        started: float,
        action: str,
        resource: str,
        details: Mapping[str, object],
        subject: str = "",
    ) -> None:
        self._resolver.observe(tenant, revision)
        await self._audit.admin(
            tenant,
            call,
            action=action,
            resource=resource,
            subject=subject,
            revision=revision,
            schema_version=self._schemas.current.version,
            details=details,
            started=started,
        )

    # --- roles ----------------------------------------------------------------------------

    async def create_role(
        self,
        tenant: str,
        name: str,
        description: str,
        permissions: Sequence[Pair],
        call: CallInfo,
    ) -> tuple[RoleView, Revision]:
        started = time.perf_counter()
        schema = await self._schemas.require()
        role = self._role(schema, name, description, permissions)
        if name in schema.roles:
            raise AlreadyExists(f"role `{echo(name)}` is built in")
        # Bindings of the name may remain (of a built-in role the schema no longer
        # declares), and the new role makes them grant again.
        await self._acyclic_role(await self._head(tenant), role)
        updates = [RelationshipUpdate(UpdateOp.CREATE, r) for r in role_relationships(role)]
        try:
            revision = await self._store.write(tenant, updates)
        except AlreadyExists:
            raise AlreadyExists(f"role `{echo(name)}` already exists") from None
        await self._logged(
            tenant,
            call,
            revision,
            started,
            methods.CREATE_ROLE,
            f"role:{name}",
            _role_details(role),
        )
        return _view(role, built_in=False), revision

    async def update_role(
        self,
        tenant: str,
        name: str,
        description: str,
        permissions: Sequence[Pair],
        call: CallInfo,
    ) -> tuple[RoleView, Revision]:
        started = time.perf_counter()
        schema = await self._schemas.require()
        role = self._role(schema, name, description, permissions)
        await self._acyclic_role(await self._require_custom(tenant, schema, name), role)
        try:
            revision, _ = await self._store.apply(
                tenant,
                [RelationshipUpdate(UpdateOp.TOUCH, r) for r in role_relationships(role)],
                [RelationshipFilter(ROLE, (name,), GRANTS)],
                preconditions=[Precondition(_marker(name))],
            )
        except PreconditionUnmet:  # deleted since it was read (by another writer)
            raise _no_role(name) from None
        await self._logged(
            tenant,
            call,
            revision,
            started,
            methods.UPDATE_ROLE,
            f"role:{name}",
            _role_details(role),
        )
        return _view(role, built_in=name in schema.roles), revision

    async def delete_role(
        self, tenant: str, name: str, cascade: bool, call: CallInfo
    ) -> tuple[Revision, int]:
        started = time.perf_counter()
        schema = await self._schemas.require()
        head = await self._require_custom(tenant, schema, name)
        uses = RelationshipFilter(BINDING, None, ROLE_OF, ROLE, (name,), "")
        deletes: list[RelationshipFilter | WholeResources] = [RelationshipFilter(ROLE, (name,))]
        preconditions = [Precondition(_marker(name))]
        if cascade:
            # The bindings are found inside the write, so one created since any read
            # here goes too, whole: a list read before would miss it and leave it in part.
            deletes.append(WholeResources(uses))
        elif name not in schema.roles:  # a built-in role of that name keeps its bindings valid
            if await self._reader(head).binding_ids(uses):
                raise _role_in_use(name)
            preconditions.append(Precondition(uses, must_exist=False))
        try:
            revision, deleted = await self._store.apply(
                tenant, [], deletes, preconditions=preconditions
            )
        except PreconditionUnmet as exc:  # another writer got there since the read
            if exc.field == "preconditions[0]":
                raise _no_role(name) from None
            raise _role_in_use(name) from None
        count = len({r.resource.id for r in deleted if r.resource.type == BINDING})
        details = {"cascade": cascade, "deleted_binding_count": count}
        await self._logged(
            tenant, call, revision, started, methods.DELETE_ROLE, f"role:{name}", details
        )
        return revision, count

    async def list_roles(
        self, tenant: str, consistency: Consistency, limit: int, after: str | None
    ) -> Page[RoleView]:
        size = page_limit(limit)
        snap = await self._at(tenant, consistency)
        custom = roles_from(await self._reader(snap).read(RelationshipFilter(ROLE)))
        views = []
        for name in sorted({*snap.schema.roles, *custom}):
            if after is not None and name <= after:
                continue
            pairs = tuple(sorted(role_pairs(snap.schema, custom, name)))
            own = custom.get(name)
            views.append(
                RoleView(
                    name,
                    own.description if own else snap.schema.roles[name].doc,
                    pairs,
                    name in snap.schema.roles,
                    own.update_time if own else None,
                )
            )
        return page_of(snap.revision, views, size, lambda v: v.name)

    def _role(
        self, schema: CompiledSchema, name: str, description: str, permissions: Sequence[Pair]
    ) -> CustomRole:
        if not _ROLE_NAME.fullmatch(name):
            raise InvalidArgument(
                f"role name `{echo(name)}` must be 1-64 characters of `a-z0-9_-`, starting with a letter",
                field="role.name",
                value=name,
            )
        if len(description) > _MAX_DESCRIPTION:
            raise InvalidArgument(
                f"description exceeds {_MAX_DESCRIPTION} characters",
                field="role.description",
                value=len(description),
            )
        seen: set[Pair] = set()
        for i, (type_name, member) in enumerate(permissions):
            where, text = f"role.permissions[{i}]", f"{type_name}.{member}"
            if type_name not in schema.definitions:
                raise InvalidArgument(
                    f"unknown definition `{echo(type_name)}` in `{echo(text)}`",
                    field=where,
                    value=text,
                )
            if schema.member(type_name, member) is None:
                raise InvalidArgument(
                    f"unknown permission `{echo(member)}` on `{echo(type_name)}`",
                    field=where,
                    value=text,
                )
            if (type_name, member) in seen:
                raise InvalidArgument(f"`{echo(text)}` appears twice", field=where, value=text)
            seen.add((type_name, member))
        return CustomRole(name, description, tuple(sorted(seen)), self._clock())

    async def _require_custom(self, tenant: str, schema: CompiledSchema, name: str) -> Snapshot:
        head = await self._head(tenant)
        if await self._reader(head).read(_marker(name)):
            return head
        if name in schema.roles:
            raise FailedPrecondition(f"role `{echo(name)}` is built in (declared in the schema)")
        raise _no_role(name)

    # --- bindings -------------------------------------------------------------------------

    async def create_binding(
        self,
        tenant: str,
        role: str,
        subject: SubjectRef,
        scope: ObjectRef | None,
        call: CallInfo,
    ) -> tuple[Binding, Revision]:
        started = time.perf_counter()
        head = await self._head(tenant)
        index = await self._grants.index(head)
        binding = await self._acyclic(head, index, self._binding(head, index, role, subject, scope))
        preconditions = [] if role in head.schema.roles else [Precondition(_marker(role))]
        updates = [RelationshipUpdate(UpdateOp.CREATE, r) for r in binding_relationships(binding)]
        try:
            revision = await self._store.write(tenant, updates, preconditions=preconditions)
        except AlreadyExists:
            revision = await self._replace_part(tenant, binding, updates, preconditions)
        except PreconditionUnmet:
            raise _unknown_role(role) from None
        details = {"binding": binding.describe()}
        await self._logged(
            tenant,
            call,
            revision,
            started,
            methods.CREATE_BINDING,
            f"binding:{binding.binding_id}",
            details,
            str(binding.subject),
        )
        return binding, revision

    async def _replace_part(
        self,
        tenant: str,
        binding: Binding,
        updates: list[RelationshipUpdate],
        preconditions: list[Precondition],
    ) -> Revision:
        """Write `binding` over what is left of it in part, or raise AlreadyExists if it
        is whole. Earlier versions could leave a binding in part (a cascade or a
        deprovisioning racing its creation): that grants nothing and no call lists or
        deletes it, so it must not count as an identical binding either."""
        ident = binding.binding_id
        identical = AlreadyExists(f"an identical binding exists: `{echo(ident)}`")
        rows = await self._reader(await self._head(tenant)).read(
            RelationshipFilter(BINDING, (ident,))
        )
        missing = sorted({ROLE_OF, SUBJECT_OF, SCOPE_OF} - {r.relation for r in rows})
        if not missing:
            raise identical
        # A row missing now and present at the write: another writer made it whole.
        absent = [
            Precondition(RelationshipFilter(BINDING, (ident,), relation), must_exist=False)
            for relation in missing
        ]
        try:
            revision, _ = await self._store.apply(
                tenant,
                updates,
                [RelationshipFilter(BINDING, (ident,))],
                preconditions=[*absent, *preconditions],
            )
        except PreconditionUnmet as exc:
            if exc.field == f"preconditions[{len(absent)}]":  # the role's, after those
                raise _unknown_role(binding.role) from None
            raise identical from None
        return revision

    def _binding(
        self,
        snap: Snapshot,
        index: TenantIndex,
        role: str,
        subject: SubjectRef,
        scope: ObjectRef | None,
    ) -> Binding:
        schema = snap.schema
        if role not in schema.roles and role not in index.custom:
            raise _unknown_role(role)
        if subject.type not in schema.definitions:
            raise InvalidArgument(
                f"unknown definition `{echo(subject.type)}`",
                field="binding.subject.object.object_type",
                value=subject.type,
            )
        if subject.relation and schema.member(subject.type, subject.relation) is None:
            raise InvalidArgument(
                f"`{echo(subject.type)}` has no relation or permission `{echo(subject.relation)}`",
                field="binding.subject.relation",
                value=subject.relation,
            )
        pairs = role_pairs(schema, index.custom, role)
        if scope is not None:
            if scope.type not in schema.definitions:
                raise InvalidArgument(
                    f"unknown definition `{echo(scope.type)}`",
                    field="binding.resource.object_type",
                    value=scope.type,
                )
            hierarchy = self._grants.hierarchy(schema)
            if not any(
                t == scope.type or scope.type in hierarchy.ancestor_types(t) for t, _ in pairs
            ):
                raise InvalidArgument(
                    f"role `{echo(role)}` grants nothing on `{echo(scope)}` or below it (no `inherit` path "
                    f"leads from `{echo(scope.type)}` to a type the role names)",
                    field="binding.resource",
                    value=str(scope),
                )
        ident = binding_id(snap.tenant, role, subject, scope)
        return Binding(ident, role, subject, scope, self._clock())

    async def delete_binding(self, tenant: str, ident: str, call: CallInfo) -> Revision:
        started = time.perf_counter()
        head = await self._head(tenant)
        found = (await self._reader(head).bindings([ident])).get(ident)
        if found is None:
            raise NotFound(f"binding `{echo(ident)}` does not exist")
        try:
            revision, _ = await self._store.delete(
                tenant,
                RelationshipFilter(BINDING, (ident,)),
                preconditions=[Precondition(RelationshipFilter(BINDING, (ident,), ROLE_OF))],
            )
        except PreconditionUnmet:  # deleted since it was read (by another writer)
            raise NotFound(f"binding `{echo(ident)}` does not exist") from None
        details = {"binding": found.describe()}
        await self._logged(
            tenant,
            call,
            revision,
            started,
            methods.DELETE_BINDING,
            f"binding:{ident}",
            details,
            str(found.subject),
        )
        return revision

    async def list_bindings(
        self,
        tenant: str,
        *,
        subject: SubjectRef | None,
        role: str,
        resource: ObjectRef | None,
        consistency: Consistency,
        limit: int,
        after: str | None,
    ) -> Page[Binding]:
        size = page_limit(limit)
        snap = await self._at(tenant, consistency)
        reader = self._reader(snap)
        filters = [RelationshipFilter(BINDING, None, ROLE_OF)]
        if subject is not None:
            filters.append(
                RelationshipFilter(
                    BINDING, None, SUBJECT_OF, subject.type, (subject.id,), subject.relation
                )
            )
        if role:
            filters.append(RelationshipFilter(BINDING, None, ROLE_OF, ROLE, (role,), ""))
        if resource is not None:
            filters.append(
                RelationshipFilter(BINDING, None, SCOPE_OF, resource.type, (resource.id,), "")
            )
        ids: set[str] | None = None
        for flt in filters[1:] or filters:
            found = await reader.binding_ids(flt)
            ids = found if ids is None else ids & found
        ordered = sorted(i for i in ids or () if after is None or i > after)
        chosen = await reader.bindings(ordered[: size + 1])
        items = [chosen[i] for i in sorted(chosen)]
        return page_of(snap.revision, items, size, lambda b: b.binding_id)

    # --- reach ----------------------------------------------------------------------------

    async def grant_reach(
        self,
        tenant: str,
        grant: str | Binding | Relationship,
        consistency: Consistency,
        limit: int,
        after: str | None,
    ) -> ReachPage:
        size = page_limit(limit)
        snap = await self._at(tenant, consistency)
        schema = snap.schema
        index = await self._grants.index(snap)
        reader = self._reader(snap)
        hierarchy = self._grants.hierarchy(schema)

        async def starts_of(binding: Binding) -> list[tuple[ObjectRef, str]]:
            pairs = role_pairs(schema, index.custom, binding.role)
            return await binding_starts(
                reader.read,
                hierarchy,
                binding,
                pairs,
                max_depth=self._max_depth,
                max_objects=self._max_reach,
            )

        if isinstance(grant, Relationship):
            check_relationship(schema, grant, "relationship")
            starts = [(grant.resource, grant.relation)]
        else:
            if isinstance(grant, str):
                binding = (await reader.bindings([grant])).get(grant)
                if binding is None:
                    raise NotFound(f"binding `{echo(grant)}` does not exist")
            else:  # validated as CreateBinding would take it
                proposed = self._binding(snap, index, grant.role, grant.subject, grant.scope)
                binding = await self._acyclic(snap, index, proposed)
            starts = await starts_of(binding)
        found = await reach(
            reader.read,
            schema,
            self._reach_rules(schema),
            starts,
            _bindings_by_subject(index, reader.read),
            starts_of,
            max_pairs=self._max_reach,
        )
        start = None if after is None else _position(after)
        rows = [r for r in found.resources if start is None or reach_order(r[0]) > start]
        page = page_of(snap.revision, rows, size, lambda r: _key(r[0]))
        return ReachPage(
            found.resource_count,
            found.permission_count,
            page.items,
            page.next_after,
            snap.revision,
        )

    async def _acyclic(self, snap: Snapshot, index: TenantIndex, binding: Binding) -> Binding:
        """`binding`, unless it would close a cycle of bindings (InvalidArgument)."""
        cycle = await binding_cycle(
            self._reader(snap).read,
            snap.schema,
            self._grants.hierarchy(snap.schema),
            index,
            binding,
            max_depth=self._max_depth,
        )
        if cycle:
            raise InvalidArgument(
                f"binding would create a cycle: {cycle}", field="binding", value=binding.describe()
            )
        return binding

    async def _acyclic_role(self, snap: Snapshot, role: CustomRole) -> None:
        """Refuse (InvalidArgument) `role` as the new definition of its name if one of the
        name's bindings would then close a cycle of bindings, which CreateBinding refuses."""
        index = (await self._grants.index(snap)).with_role(snap.schema, role)
        found = await role_cycle(
            self._reader(snap).read,
            snap.schema,
            self._grants.hierarchy(snap.schema),
            index,
            role.name,
            max_depth=self._max_depth,
        )
        if found:
            binding, cycle = found
            raise InvalidArgument(
                f"{binding.describe()} would create a cycle: {cycle}",
                field="role.permissions",
                value=binding.describe(),
            )

    def _reach_rules(self, schema: CompiledSchema) -> ReachRules:
        rules = self._rules.get(schema.version)
        if rules is None:
            rules = self._rules[schema.version] = ReachRules.build(schema)
        return rules


def _bindings_by_subject(
    index: TenantIndex, read: ReadFn
) -> Callable[[SubjectRef], Awaitable[list[Binding]]]:
    if index.bindings is None:
        return lambda subject: bindings_of_subject(read, subject)
    by_subject: dict[SubjectRef, list[Binding]] = {}
    for bindings in index.bindings.values():
        for binding in bindings:
            by_subject.setdefault(binding.subject, []).append(binding)

    async def lookup(subject: SubjectRef) -> list[Binding]:
        return by_subject.get(subject, [])

    return lookup


def _key(obj: ObjectRef) -> str:
    """A reached resource's position in a cursor: `type:id`, as cursors have always held."""
    return f"{obj.type}:{obj.id}"


def _position(key: str) -> tuple[str, str]:
    """`_key` read back as the `reach_order` it stands for. Compared as text, `type:id`
    orders differently (`doc2:x` before `doc:x`) and pages would skip or repeat resources.
    The first `:` splits it: no type name holds one."""
    type_name, _, ident = key.partition(":")
    return (type_name, ident)


# Store preconditions name their index (`preconditions[i]`); these calls have no such
# field, so a failed one is reported as what it means.
def _no_role(name: str) -> NotFound:
    return NotFound(f"role `{echo(name)}` does not exist")


def _unknown_role(name: str) -> InvalidArgument:
    return InvalidArgument(f"unknown role `{echo(name)}`", field="binding.role", value=name)


def _role_in_use(name: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"role `{echo(name)}` is used by bindings: delete them first, or use cascade"
    )


def _marker(name: str) -> RelationshipFilter:
    return RelationshipFilter(ROLE, (name,), DEFINED)


def _view(role: CustomRole, *, built_in: bool) -> RoleView:
    return RoleView(role.name, role.description, role.permissions, built_in, role.update_time)


def _role_details(role: CustomRole) -> dict[str, object]:
    return {
        "description": role.description,
        "permissions": [f"{t}.{p}" for t, p in role.permissions],
    }
