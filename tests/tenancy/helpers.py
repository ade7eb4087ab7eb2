"""Shared pieces of the tenancy tests: the schema, an in-process world (on the memory
store unless given another), and gRPC helpers for TenancyService."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc

from authz_service.api.gen.authz.v1 import core_pb2, tenancy_pb2, tenancy_pb2_grpc
from authz_service.cache.lru import DecisionCache
from authz_service.engine import CheckItem, CheckResult, Engine, Snapshot
from authz_service.model import (
    FrozenContext,
    RelationshipUpdate,
    UpdateOp,
    parse_object,
    parse_relationship,
    parse_subject,
)
from authz_service.revisions import RevisionResolver
from authz_service.service.audit import AuditTrail, CallInfo
from authz_service.service.lifecycle import LifecycleService
from authz_service.service.permissions import PermissionService
from authz_service.service.schemas import SchemaManager
from authz_service.service.tenancy import TenancyService
from authz_service.store.memory import MemoryStore
from authz_service.store.protocol import Store
from authz_service.tenancy import BindingGrants, SubjectStatuses
from tests.api.helpers import obj, subj

SCHEMA = """
definition user {
    relation support: user
    permission impersonate = support
}
definition group {
    relation member: user | group#member
}
definition folder {
    relation parent: folder
    relation viewer: user | user:* | group#member
    inherit parent
    permission view = viewer + parent->view
}
definition invoice {
    relation folder: folder
    relation owner: user
    inherit folder
    permission view = owner + folder->view
    permission pay = owner
    nondelegable permission approve = owner
}
role auditor { invoice.view, folder.view }
"""

NOW = datetime(2030, 1, 1, tzinfo=UTC)
CALL = CallInfo()


def item(text: str, context: dict[str, Any] | None = None) -> CheckItem:
    """`invoice:x#pay@user:y` -> CheckItem."""
    resource, _, rest = text.partition("#")
    permission, _, subject = rest.partition("@")
    return CheckItem(
        parse_object(resource), permission, parse_subject(subject), FrozenContext(context or {})
    )


@dataclass
class World:
    """Everything in process on one store: the services the gRPC layer calls."""

    store: Store
    schemas: SchemaManager
    permissions: PermissionService
    tenancy: TenancyService
    lifecycle: LifecycleService
    engine: Engine
    grants: BindingGrants
    statuses: SubjectStatuses

    async def snap(self, tenant: str) -> Snapshot:
        revision = await self.store.head_revision(tenant)
        return Snapshot(tenant, revision, self.schemas.current, NOW)

    async def touch(self, tenant: str, *texts: str) -> int:
        updates = [RelationshipUpdate(UpdateOp.TOUCH, parse_relationship(t)) for t in texts]
        return await self.store.write(tenant, updates)

    async def check(self, tenant: str, text: str, **kw: Any) -> CheckResult:
        return await self.permissions.evaluate(await self.snap(tenant), item(text), **kw)


async def world(
    schema: str = SCHEMA, *, max_binding_rows: int = 4000, store: Store | None = None
) -> World:
    store = MemoryStore() if store is None else store
    schemas = SchemaManager(store)
    await schemas.write(schema)
    grants = BindingGrants(store, max_binding_rows=max_binding_rows)
    statuses = SubjectStatuses(store)
    engine = Engine(store, grant_sources=[grants])
    resolver = RevisionResolver(store, max_staleness_s=0)
    audit = AuditTrail(None)
    permissions = PermissionService(
        engine=engine,
        schemas=schemas,
        resolver=resolver,
        cache=DecisionCache(1000),
        audit=audit,
        statuses=statuses,
        clock=lambda: NOW,
    )
    tenancy = TenancyService(
        store=store,
        schemas=schemas,
        resolver=resolver,
        audit=audit,
        grants=grants,
        clock=lambda: NOW,
    )
    lifecycle = LifecycleService(
        store=store,
        schemas=schemas,
        resolver=resolver,
        audit=audit,
        statuses=statuses,
        clock=lambda: NOW,
    )
    return World(store, schemas, permissions, tenancy, lifecycle, engine, grants, statuses)


# --- gRPC ---------------------------------------------------------------------------------


def role_msg(name: str, permissions: Sequence[str], description: str = "") -> tenancy_pb2.Role:
    return tenancy_pb2.Role(
        name=name,
        description=description,
        permissions=[
            tenancy_pb2.RolePermission(resource_type=p.split(".")[0], permission=p.split(".")[1])
            for p in permissions
        ],
    )


def binding_msg(role: str, subject: str, resource: str | None = None) -> core_pb2.RoleBinding:
    msg = core_pb2.RoleBinding(role=role, subject=subj(subject))
    if resource is not None:
        msg.resource.CopyFrom(obj(resource))
    return msg


class KeyedChannel:
    """Adds metadata (an API key) to every call of the stubs built on it."""

    def __init__(self, channel: grpc.aio.Channel, token: str | None) -> None:
        self._channel = channel
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def __getattr__(self, kind: str) -> Any:
        factory = getattr(self._channel, kind)

        def make(*args: Any, **kwargs: Any) -> Any:
            multicallable = factory(*args, **kwargs)

            def call(request: Any, **options: Any) -> Any:
                options.setdefault("metadata", self._metadata)
                return multicallable(request, **options)

            return call

        return make


def tenancy_stub(channel: Any) -> tenancy_pb2_grpc.TenancyServiceStub:
    return tenancy_pb2_grpc.TenancyServiceStub(channel)
