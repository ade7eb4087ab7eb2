"""Building an engine over a memory store from schema text and relationship strings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from authz_service.engine import (
    CheckItem,
    CheckResult,
    Decision,
    Dispatcher,
    Engine,
    GrantSource,
    Limits,
    Snapshot,
)
from authz_service.model import (
    FrozenContext,
    RelationshipUpdate,
    UpdateOp,
    parse_object,
    parse_relationship,
    parse_subject,
)
from authz_service.schema import compile_schema
from authz_service.store.memory import MemoryStore

NOW = datetime(2030, 1, 1, tzinfo=UTC)
TENANT = "t1"


@dataclass
class Setup:
    engine: Engine
    snap: Snapshot
    store: MemoryStore

    async def check(
        self, text: str, context: dict[str, Any] | None = None, **kw: Any
    ) -> CheckResult:
        return await self.engine.check(self.snap, item(text, context), **kw)

    async def decision(self, text: str, context: dict[str, Any] | None = None) -> Decision:
        return (await self.check(text, context)).decision


def item(text: str, context: dict[str, Any] | None = None) -> CheckItem:
    """`doc:x#view@user:y` -> CheckItem."""
    resource, _, rest = text.partition("#")
    permission, _, subject = rest.partition("@")
    return CheckItem(
        parse_object(resource), permission, parse_subject(subject), FrozenContext(context or {})
    )


async def setup(
    schema: str,
    relationships: Sequence[str] = (),
    *,
    now: datetime = NOW,
    limits: Limits = Limits(),  # noqa: B008 - frozen
    wrapper: Callable[[Dispatcher], Dispatcher] | None = None,
    grant_sources: Sequence[GrantSource] = (),
) -> Setup:
    compiled = compile_schema(schema)
    store = MemoryStore()
    updates = [RelationshipUpdate(UpdateOp.CREATE, parse_relationship(r)) for r in relationships]
    revision = await store.write(TENANT, updates) if updates else 0
    engine = Engine(store, limits=limits, dispatcher_wrapper=wrapper, grant_sources=grant_sources)
    return Setup(engine, Snapshot(TENANT, revision, compiled, now), store)
