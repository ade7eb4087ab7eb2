"""Roles and bindings on PostgreSQL while another writer commits between a call's reads
and its write. The call is held at its write (`Held`), the other writer runs to the end,
then the call goes on: the interleaving is forced, not hoped for. No binding is ever left
in part."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from authz_service.errors import AlreadyExists
from authz_service.model import (
    Consistency,
    ConsistencyMode,
    ObjectRef,
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    SubjectRef,
    UpdateOp,
)
from authz_service.store.postgres import PostgresStore
from authz_service.tenancy import Binding
from authz_service.tenancy.encoding import (
    BINDING,
    ROLE_OF,
    SUBJECT_OF,
    binding_id,
    binding_relationships,
)
from tests.tenancy.helpers import CALL, World, world

T = "acme"
PAY = [("invoice", "pay")]
ANN, BOB = SubjectRef("user", "ann"), SubjectRef("user", "bob")


@pytest.fixture
async def w(pg_store: PostgresStore) -> World:
    return await world(store=pg_store)


class Held:
    """The next call of `store.<method>` waits at its start until `release()`: the
    service call making it is caught between its reads and its write."""

    def __init__(self, store: Any, method: str) -> None:
        self._reached, self._go = asyncio.Event(), asyncio.Event()
        real = getattr(store, method)

        async def held(*args: Any, **kwargs: Any) -> Any:
            setattr(store, method, real)  # only this one call waits
            self._reached.set()
            await self._go.wait()
            return await real(*args, **kwargs)

        setattr(store, method, held)

    async def reached_by(self, task: asyncio.Task[Any]) -> None:
        """Return once `task` waits here; fail if it ends without getting here."""
        reached = asyncio.ensure_future(self._reached.wait())
        await asyncio.wait([reached, task], return_when=asyncio.FIRST_COMPLETED)
        reached.cancel()
        if not self._reached.is_set():
            task.result()  # raises what the call raised
            pytest.fail("the call ended without reaching its write")

    def release(self) -> None:
        self._go.set()


async def binding_rows(w: World) -> list[Relationship]:
    """Every live row of every binding, complete or not, at the head."""
    return await w.store.read(T, await w.store.head_revision(T), RelationshipFilter(BINDING))


async def listed(w: World) -> list[str]:
    page = await w.tenancy.list_bindings(
        T,
        subject=None,
        role="",
        resource=None,
        consistency=Consistency(ConsistencyMode.FULLY_CONSISTENT),
        limit=0,
        after=None,
    )
    return [b.binding_id for b in page.items]


async def test_a_binding_made_during_a_cascading_role_delete_is_deleted_whole(w: World) -> None:
    await w.tenancy.create_role(T, "billing", "", PAY, CALL)
    await w.tenancy.create_binding(T, "billing", ANN, None, CALL)
    held = Held(w.store, "apply")
    deleting = asyncio.create_task(w.tenancy.delete_role(T, "billing", True, CALL))
    await held.reached_by(deleting)
    late, _ = await w.tenancy.create_binding(T, "billing", BOB, None, CALL)
    held.release()
    _, count = await deleting
    assert count == 2
    assert await binding_rows(w) == []
    # so it can be made again, and is then listed and deleted like any other
    await w.tenancy.create_role(T, "billing", "", PAY, CALL)
    again, _ = await w.tenancy.create_binding(T, "billing", BOB, None, CALL)
    assert again.binding_id == late.binding_id
    assert await listed(w) == [late.binding_id]
    await w.tenancy.delete_binding(T, late.binding_id, CALL)
    assert await binding_rows(w) == []


async def test_a_binding_made_during_a_deprovisioning_is_deleted_whole(w: World) -> None:
    await w.tenancy.create_role(T, "billing", "", PAY, CALL)
    held = Held(w.store, "apply")
    leaving = asyncio.create_task(w.lifecycle.deprovision(T, ObjectRef("user", "ann"), "", CALL))
    await held.reached_by(leaving)
    late, _ = await w.tenancy.create_binding(T, "billing", ANN, None, CALL)
    held.release()
    gone = await leaving
    assert await binding_rows(w) == []
    assert [b.binding_id for b in gone.bindings] == [late.binding_id]


async def leave_in_part(w: World, missing: str) -> str:
    """The rows of `billing` to ann tenant-wide but the `missing` one, as a race in an
    earlier version could leave them; returns the binding's id."""
    ident = binding_id(T, "billing", ANN, None)
    rows = binding_relationships(Binding(ident, "billing", ANN, None))
    updates = [RelationshipUpdate(UpdateOp.CREATE, r) for r in rows if r.relation != missing]
    await w.store.write(T, updates)
    return ident


@pytest.mark.parametrize("missing", [ROLE_OF, SUBJECT_OF])
async def test_a_binding_left_in_part_is_no_identical_binding(w: World, missing: str) -> None:
    """What is left grants nothing and is listed nowhere, so it cannot stop the binding
    from being made: it is replaced by the whole binding."""
    await w.tenancy.create_role(T, "billing", "", PAY, CALL)
    ident = await leave_in_part(w, missing)
    assert await listed(w) == []
    made, _ = await w.tenancy.create_binding(T, "billing", ANN, None, CALL)
    assert made.binding_id == ident
    assert await listed(w) == [ident]
    with pytest.raises(AlreadyExists, match=ident):
        await w.tenancy.create_binding(T, "billing", ANN, None, CALL)
    await w.tenancy.delete_binding(T, ident, CALL)
    assert await binding_rows(w) == []


async def test_a_binding_left_in_part_and_made_meanwhile_is_an_identical_binding(
    w: World,
) -> None:
    await w.tenancy.create_role(T, "billing", "", PAY, CALL)
    ident = await leave_in_part(w, ROLE_OF)
    held = Held(w.store, "apply")
    first = asyncio.create_task(w.tenancy.create_binding(T, "billing", ANN, None, CALL))
    await held.reached_by(first)
    await w.tenancy.create_binding(T, "billing", ANN, None, CALL)
    held.release()
    with pytest.raises(AlreadyExists, match=ident):
        await first
    assert await listed(w) == [ident]
