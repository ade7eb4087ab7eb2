"""A binding that closes a cycle of bindings is refused however it comes about: created
(CreateBinding), or made one by a change of what its role grants (UpdateRole, or a
CreateRole giving bindings of a name no role had meaning again). On PostgreSQL."""

from __future__ import annotations

import pytest

from authz_service.errors import InvalidArgument
from authz_service.model import SubjectRef
from authz_service.store.postgres import PostgresStore
from tests.tenancy.helpers import CALL, SCHEMA, world

T = "acme"
ENG = SubjectRef("group", "eng", "member")


@pytest.mark.parametrize("max_binding_rows", [4000, 0])  # bindings in the index, or read
async def test_updating_a_bound_role_into_a_cycle_is_refused_naming_the_binding(
    pg_store: PostgresStore, max_binding_rows: int
) -> None:
    w = await world(store=pg_store, max_binding_rows=max_binding_rows)
    await w.tenancy.create_role(T, "harmless", "", [("folder", "view")], CALL)
    bound, _ = await w.tenancy.create_binding(T, "harmless", ENG, None, CALL)
    head = await w.store.head_revision(T)
    with pytest.raises(InvalidArgument, match="cycle") as caught:
        await w.tenancy.update_role(T, "harmless", "", [("group", "member")], CALL)
    assert bound.binding_id in caught.value.message
    assert caught.value.field == "role.permissions"
    assert await w.store.head_revision(T) == head
    # what CreateBinding refuses for the same binding
    await w.tenancy.create_role(T, "member-of", "", [("group", "member")], CALL)
    with pytest.raises(InvalidArgument, match="cycle"):
        await w.tenancy.create_binding(T, "member-of", ENG, None, CALL)
    # an update that closes no cycle is made
    await w.tenancy.update_role(T, "harmless", "", [("folder", "view"), ("invoice", "view")], CALL)


async def test_creating_a_role_its_old_bindings_would_make_a_cycle_is_refused(
    pg_store: PostgresStore,
) -> None:
    """Bindings of a built-in role the schema no longer declares stay; a custom role of
    that name makes them grant again, so it is checked as an update of it would be."""
    w = await world(SCHEMA + "role contractor { folder.view }\n", store=pg_store)
    bound, _ = await w.tenancy.create_binding(T, "contractor", ENG, None, CALL)
    await w.schemas.write(SCHEMA)
    with pytest.raises(InvalidArgument, match=bound.binding_id):
        await w.tenancy.create_role(T, "contractor", "", [("group", "member")], CALL)
    await w.tenancy.create_role(T, "contractor", "", [("folder", "view")], CALL)
