"""A small demo model and data set, loaded by `authz serve --demo` into tenant `demo`.

Loading is idempotent: the tenant is created and the schema written only if missing,
relationships are touched (create-or-replace), so restarting with `--demo` changes nothing.
"""

from __future__ import annotations

from importlib import resources

from authz_service.model import RelationshipUpdate, UpdateOp, parse_relationship
from authz_service.service.audit import CallInfo
from authz_service.service.relationships import RelationshipService
from authz_service.service.schemas import SchemaManager
from authz_service.service.tenants import TenantService

__all__ = ["DEMO_TENANT", "demo_relationships", "demo_schema", "load_demo"]

DEMO_TENANT = "demo"


def demo_schema() -> str:
    return resources.files(__package__).joinpath("schema.zed").read_text()


def demo_relationships() -> list[str]:
    text = resources.files(__package__).joinpath("relationships.txt").read_text()
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("//")]


async def load_demo(
    schemas: SchemaManager, relationships: RelationshipService, tenants: TenantService
) -> None:
    await tenants.ensure(DEMO_TENANT, CallInfo(credential_id="demo-loader"))
    if schemas.loaded is None:
        await schemas.write(demo_schema())
    updates = [
        RelationshipUpdate(UpdateOp.TOUCH, parse_relationship(line))
        for line in demo_relationships()
    ]
    await relationships.write(DEMO_TENANT, updates, CallInfo(credential_id="demo-loader"))
