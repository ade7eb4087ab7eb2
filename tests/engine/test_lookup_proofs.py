"""LookupResources' proofs: which candidates are allowed without a Check, and which are
still decided by one, and that the answer is Check's either way."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from authz_service.engine import (
    CheckItem,
    Decision,
    Dispatcher,
    Engine,
    Limits,
    Subproblem,
    SubResult,
)
from authz_service.engine.check import allowed_by_schema
from authz_service.engine.reverse import ReverseIndex, plain_kind
from authz_service.errors import LimitExceeded
from authz_service.model import (
    EMPTY_CONTEXT,
    FrozenContext,
    ObjectRef,
    SubjectRef,
    parse_relationship,
)
from authz_service.schema import compile_schema
from authz_service.store.memory import MemoryStore
from tests.tenancy.test_grants import BILLING, TREE, binding
from tests.tenancy.test_grants import setup as grants_setup

from .helpers import Setup, setup

SCHEMA = """
use self
use expiration
definition user {
    relation friend: user
    permission myself = self + friend
    permission others = friend - self
}
caveat over(x int) { x > 5 }
definition group {
    relation member: user | group#member | user with over
}
definition folder {
    relation parent: folder
    relation viewer: user | group#member | user with expiration
    permission view = viewer + parent->view
    permission every = parent.all(view)
}
definition doc {
    relation folder: folder
    relation owner: user
    relation viewer: user | user:* | group#member | user with over
    relation banned: user | group#member
    relation reviewer: user
    relation blocked: doc#cyclic
    permission view = (owner + viewer + folder->view) - banned
    permission review = viewer & reviewer
    permission shadow = viewer - folder->view
    permission cyclic = viewer - blocked
}
"""

RELS = [
    "doc:d01#owner@user:ann",
    # a plain chain: doc -> folder -> parent folder -> group -> nested group -> ann
    "doc:d02#folder@folder:f1",
    "folder:f1#parent@folder:f0",
    "folder:f0#viewer@group:eng#member",
    "group:eng#member@group:core#member",
    "group:core#member@user:ann",
    "doc:d03#viewer@user:ann[over]",
    "doc:d04#viewer@user:ann",
    "doc:d04#banned@user:ann",
    "doc:d05#viewer@user:*",
    "doc:d06#viewer@user:*",
    "doc:d06#banned@group:eng#member",
    "doc:d07#viewer@user:ann",
    "doc:d07#banned@user:bob",
    "group:cav#member@user:ann[over]",
    "doc:d08#viewer@group:cav#member",
    "folder:f2#viewer@user:ann[expiration:2031-01-01T00:00:00Z]",
    "doc:d09#folder@folder:f2",
    "folder:f3#viewer@user:ann[expiration:2029-01-01T00:00:00Z]",
    "doc:d10#folder@folder:f3",
    "doc:d11#viewer@user:ann",
    "doc:d11#reviewer@user:ann",
    "doc:d12#folder@folder:f1",
    "doc:d12#viewer@user:ann",
    "folder:f4#parent@folder:f0",
    "folder:f4#parent@folder:f2",
    "folder:f5#parent@folder:f0",
    "folder:f5#parent@folder:f3",
    "doc:d13#viewer@user:ann",
    "doc:d13#blocked@doc:d07#cyclic",
    "user:ann#friend@user:bob",
    "user:bob#friend@user:ann",
]
ANN = SubjectRef("user", "ann")


class Recorder:
    """Wraps the local dispatcher: which questions were asked of Check at the top."""

    def __init__(self) -> None:
        self.roots: list[str] = []
        self.inner: Dispatcher | None = None

    def wrap(self, inner: Dispatcher) -> Dispatcher:
        self.inner = inner
        return self

    async def dispatch(self, req: Subproblem) -> SubResult:
        if req.depth == 0:
            self.roots.append(req.resource.id)
        assert self.inner is not None
        return await self.inner.dispatch(req)


async def _world(rels: Sequence[str] = RELS, **kw: Any) -> tuple[Setup, Recorder]:
    recorder = Recorder()
    return await setup(SCHEMA, rels, wrapper=recorder.wrap, **kw), recorder


async def _lookup(
    s: Setup,
    recorder: Recorder,
    type_name: str,
    name: str,
    subject: SubjectRef = ANN,
    context: FrozenContext = EMPTY_CONTEXT,
    **kw: Any,
) -> tuple[dict[str, tuple[Decision, tuple[str, ...]]], list[str]]:
    """(results by id, the ids Check was asked about), after checking that every object
    of the type gets exactly Check's answer."""
    recorder.roots.clear()
    found = {
        r.resource_id: (r.decision, r.missing_context)
        async for r in s.engine.lookup_resources(s.snap, type_name, name, subject, context, **kw)
    }
    checked = sorted(recorder.roots)
    ids = {r.split("#")[0].split(":")[1] for r in RELS if r.startswith(f"{type_name}:")}
    for object_id in ids | {"ann", "bob"} if type_name == "user" else ids:
        text = f"{type_name}:{object_id}#{name}@{subject}"
        result = await s.check(text, dict(context))
        got = found.get(object_id, (Decision.DENIED, ()))
        assert got == (result.decision, result.missing_context), text
    return found, checked


async def test_plain_chains_are_allowed_without_check() -> None:
    s, recorder = await _world()
    found, checked = await _lookup(s, recorder, "doc", "view")
    allowed = sorted(i for i, (d, _) in found.items() if d is Decision.ALLOWED)
    assert allowed == ["d01", "d02", "d05", "d07", "d09", "d11", "d12", "d13"]
    # caveats (d03, d08) and the subtracted `banned` that may hold (d04, d06) are checked
    assert checked == ["d03", "d04", "d06", "d08"]
    assert found["d03"] == (Decision.CONDITIONAL, ("x",))
    assert found["d08"] == (Decision.CONDITIONAL, ("x",))
    assert "d10" not in found  # reached only through an expired relationship


async def test_caveats_are_decided_with_the_request_context() -> None:
    s, recorder = await _world()
    found, checked = await _lookup(s, recorder, "doc", "view", context=FrozenContext({"x": 9}))
    assert found["d03"] == found["d08"] == (Decision.ALLOWED, ())
    assert checked == ["d03", "d04", "d06", "d08"]
    found, _ = await _lookup(s, recorder, "doc", "view", context=FrozenContext({"x": 1}))
    assert "d03" not in found
    assert "d08" not in found


async def test_intersections_and_all_arrows_are_checked() -> None:
    s, recorder = await _world()
    found, checked = await _lookup(s, recorder, "doc", "review")
    assert found == {"d11": (Decision.ALLOWED, ())}
    assert checked == ["d03", "d04", "d05", "d06", "d07", "d08", "d11", "d12", "d13"]
    found, checked = await _lookup(s, recorder, "folder", "every")
    assert sorted(found) == ["f1", "f4"]  # f5 has a parent viewable only until 2029
    assert checked == ["f1", "f4", "f5"]


async def test_exclusions_that_cannot_be_bounded_are_checked() -> None:
    s, recorder = await _world()
    # `viewer - folder->view`: the subtracted arrow has no candidates of its own here
    found, checked = await _lookup(s, recorder, "doc", "shadow")
    assert sorted(found) == ["d03", "d04", "d05", "d06", "d07", "d08", "d11", "d13"]
    assert checked == ["d03", "d04", "d05", "d06", "d07", "d08", "d11", "d12", "d13"]
    # `viewer - blocked`, where `blocked` holds `doc#cyclic` itself: an exclusion on a
    # cycle of the schema proves nothing
    found, checked = await _lookup(s, recorder, "doc", "cyclic")
    assert sorted(found) == ["d03", "d04", "d05", "d06", "d07", "d08", "d11", "d12"]
    assert checked == ["d03", "d04", "d05", "d06", "d07", "d08", "d11", "d12", "d13"]


async def test_self_proves_and_subtracted_self_is_checked() -> None:
    s, recorder = await _world()
    found, checked = await _lookup(s, recorder, "user", "myself")
    assert sorted(found) == ["ann", "bob"]
    assert checked == []
    found, checked = await _lookup(s, recorder, "user", "others")
    assert sorted(found) == ["bob"]
    assert checked == ["bob"]


async def test_a_subject_set_subject_is_proven_like_a_user() -> None:
    s, recorder = await _world()
    eng = SubjectRef("group", "eng", "member")
    found, checked = await _lookup(s, recorder, "doc", "view", eng)
    assert sorted(found) == ["d02", "d12"]  # `user:*` is for users, not subject sets
    assert checked == []  # `banned` holds eng on d06, which eng cannot view anyway


async def test_a_proof_longer_than_the_depth_limit_is_left_to_check() -> None:
    chain = [f"folder:c{i}#parent@folder:c{i + 1}" for i in range(60)]
    rels = [*chain, "folder:c60#viewer@user:ann", "doc:deep#folder@folder:c0"]
    s, recorder = await _world(rels)
    with pytest.raises(LimitExceeded, match="max depth"):
        _ = [r async for r in s.engine.lookup_resources(s.snap, "doc", "view", ANN, EMPTY_CONTEXT)]
    deeper = Limits(max_depth=100)
    recorder.roots.clear()
    found = [
        r.resource_id
        async for r in s.engine.lookup_resources(
            s.snap, "doc", "view", ANN, EMPTY_CONTEXT, limits=deeper
        )
    ]
    assert found == ["deep"]
    assert recorder.roots == []


async def test_paging_mixes_proven_and_checked_candidates() -> None:
    s, _ = await _world()
    pages: list[str] = []
    after = None
    while True:
        page = [
            r.resource_id
            async for r in s.engine.lookup_resources(
                s.snap, "doc", "view", ANN, EMPTY_CONTEXT, after=after, limit=2
            )
        ]
        if not page:
            break
        pages += page
        after = page[-1]
    assert pages == ["d01", "d02", "d03", "d05", "d07", "d08", "d09", "d11", "d12", "d13"]


async def test_what_role_bindings_grant_is_checked() -> None:
    store = MemoryStore()
    _, snap, grants = await grants_setup(
        [*TREE, "invoice:own#owner@user:ann"],
        [BILLING],
        [binding("billing-admin", "user:ann", "folder:sub")],
        store=store,
    )
    recorder = Recorder()
    engine = Engine(store, grant_sources=[grants], dispatcher_wrapper=recorder.wrap)
    stream = engine.lookup_resources(snap, "invoice", "pay", ANN, EMPTY_CONTEXT)
    found = [r.resource_id async for r in stream]
    assert found == ["inv1", "inv2", "own"]
    assert sorted(recorder.roots) == ["inv1", "inv2"]  # `own` is proven by its owner
    for invoice in ("inv1", "inv2", "inv3", "own", "other"):
        item = CheckItem(ObjectRef("invoice", invoice), "pay", ANN)
        result = await engine.check(snap, item)
        assert (result.decision is Decision.ALLOWED) == (invoice in found), invoice


def test_plain_kinds_are_what_check_allows_without_a_caveat() -> None:
    """The walk's shortcut for "the schema allows this relationship" agrees with the rule
    Check applies, for every subject shape a relationship can have (expiring or not)."""
    schema = compile_schema(SCHEMA)
    index = ReverseIndex.build(schema)
    subjects = [
        f"{t}:x{r}" for t in ("user", "group", "folder", "doc") for r in ("", "#member", "#view")
    ] + ["user:*", "group:*"]
    expiries = ["", "[expiration:2031-01-01T00:00:00Z]"]
    for (type_name, name), relation in schema.relations.items():
        for subject in subjects:
            for expiry in expiries:
                rel = parse_relationship(f"{type_name}:a#{name}@{subject}{expiry}")
                shortcut = plain_kind(rel) in index.plain[(type_name, name)]
                assert shortcut == allowed_by_schema(relation, rel), str(rel)
