"""PostgresStore and MemoryStore agree on many small generated histories: the same
outcome (revision or error class) for every call, and the same reads at every revision,
the same Watch changes and pages."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authz_service.errors import AuthzError
from authz_service.model import (
    CaveatRef,
    FrozenContext,
    ObjectRef,
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    SubjectRef,
    UpdateOp,
)
from authz_service.store import MemoryStore, Precondition, Store
from authz_service.store.postgres import PostgresStore

_tenants = itertools.count()

SUBJECTS = [
    SubjectRef("user", "ann"),
    SubjectRef("user", "Bob"),
    SubjectRef("user", "*"),
    SubjectRef("group", "eng", "member"),
]
relationships = st.builds(
    Relationship,
    st.builds(ObjectRef, st.just("doc"), st.sampled_from(["aa", "a_b", "B"])),
    st.sampled_from(["viewer", "editor"]),
    st.sampled_from(SUBJECTS),
    st.one_of(
        st.none(),
        st.builds(lambda n: CaveatRef("cav", FrozenContext({"n": n})), st.integers(0, 2)),
    ),
)
updates = st.builds(RelationshipUpdate, st.sampled_from(list(UpdateOp)), relationships)
filters = st.builds(
    RelationshipFilter,
    st.none() | st.just("doc"),
    st.none() | st.lists(st.sampled_from(["aa", "a_b", "B"]), max_size=2).map(tuple),
    st.none() | st.sampled_from(["viewer", "editor"]),
    st.none() | st.sampled_from(["user", "group"]),
    st.none() | st.lists(st.sampled_from(["ann", "Bob", "*", "eng"]), max_size=2).map(tuple),
    st.none() | st.sampled_from(["", "member"]),
)


@dataclass(frozen=True)
class Write:
    updates: list[RelationshipUpdate]
    preconditions: list[Precondition]
    key: str | None


@dataclass(frozen=True)
class Delete:
    flt: RelationshipFilter
    preconditions: list[Precondition]


preconditions = st.lists(st.builds(Precondition, filters, st.booleans()), max_size=1)
calls = st.lists(
    st.one_of(
        st.builds(
            Write,
            st.lists(updates, max_size=4),
            preconditions,
            st.none() | st.sampled_from(["k1", "k2"]),
        ),
        st.builds(Delete, filters, preconditions),
    ),
    min_size=1,
    max_size=8,
)


async def apply(store: Store, tenant: str, call: Write | Delete) -> object:
    try:
        if isinstance(call, Write):
            return await store.write(
                tenant, call.updates, preconditions=call.preconditions, idempotency_key=call.key
            )
        return await store.delete(tenant, call.flt, preconditions=call.preconditions)
    except AuthzError as exc:
        return type(exc).__name__


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=calls, probe=filters)
async def test_postgres_behaves_like_memory(
    pg_store: PostgresStore, history: list[Write | Delete], probe: RelationshipFilter
) -> None:
    tenant = f"t{next(_tenants)}"  # a fresh tenant per example: no cleanup needed
    memory = MemoryStore()
    for call in history:
        assert await apply(pg_store, tenant, call) == await apply(memory, tenant, call), call
    head = await memory.head_revision(tenant)
    assert await pg_store.head_revision(tenant) == head
    for revision in range(head + 1):
        for flt in (RelationshipFilter(), probe):
            assert await pg_store.read(tenant, revision, flt) == await memory.read(
                tenant, revision, flt
            )
    everything = await memory.read(tenant, head, RelationshipFilter())
    for after in everything[:3]:
        assert await pg_store.read(
            tenant, head, RelationshipFilter(), limit=2, after=after
        ) == await memory.read(tenant, head, RelationshipFilter(), limit=2, after=after)
    for since in range(head + 1):
        for limit in (1, 3, 1000):
            assert await pg_store.changes(tenant, since, limit=limit) == await memory.changes(
                tenant, since, limit=limit
            )
    for change in (None, *await memory.changes(tenant, 0)):
        at, within = (0, None) if change is None else (change.revision, change.relationship)
        for limit in (1, 3):
            assert await pg_store.changes_page(
                tenant, at, within=within, limit=limit
            ) == await memory.changes_page(tenant, at, within=within, limit=limit)
